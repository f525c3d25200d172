# Seeds the kernel before the first student cell. TensorFlow and Keras are seeded by a
# post-import hook, so a notebook that never imports them never pays for them.
#
# Sent to the kernel as text (see inkernel/__init__.py); comments only up here, no
# docstring, which the kernel would store as the student's __doc__.


def __grader_setup(seed, env):
    import os, random, sys, importlib.abc
    os.environ.update(env)
    random.seed(seed)
    try:
        import numpy
        numpy.random.seed(seed)
    except ImportError:
        pass

    def seed_tf(module):
        module.random.set_seed(seed)
        try:
            module.config.experimental.enable_op_determinism()
        except Exception:
            pass

    def seed_keras(module):
        module.utils.set_random_seed(seed)

    hooks = {"tensorflow": seed_tf, "keras": seed_keras}

    class SeedOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            hook = hooks.get(name)
            if hook is None:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
            else:
                return None
            loader = spec.loader
            run = getattr(loader, "exec_module", None)
            if run is None:
                return None
            hooks.pop(name)

            def exec_module(module, run=run, hook=hook):
                run(module)
                try:
                    hook(module)
                except Exception:
                    pass

            loader.exec_module = exec_module
            return spec

    for name, hook in list(hooks.items()):
        if name in sys.modules:
            hooks.pop(name)
            try:
                hook(sys.modules[name])
            except Exception:
                pass
    sys.meta_path.insert(0, SeedOnImport())
