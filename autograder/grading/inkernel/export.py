# The export, run inside the student's kernel after the last cell (see grading/export.py).
# Parameters arrive as a JSON literal (no string formatting of names into code). Errors
# for one name never stop the others. Sent to the kernel as text (see inkernel/__init__.py)
# and exec'd in a namespace of its own, so these helpers never meet the student's names;
# comments only up here, no docstrings. (get_ipython is a name of the kernel, not of this file.)

import json, math, os, shutil, sys


class _Refused(Exception):
    pass


def _tname(v):
    return type(v).__name__[:60]


def _failure(exc):
    return str(exc) if isinstance(exc, _Refused) else "%s: %s" % (_tname(exc), str(exc)[:200])


def _drop_transformers():
    # A student-installed transformer cannot touch this code, but a later cell of ours
    # might; drop them anyway.
    try:
        ip = get_ipython()
        ip.input_transformers_post[:] = []
        ip.ast_transformers[:] = []
    except Exception:
        pass


def _empty_folder(out):
    # Whatever a cell left here (a file filling this folder's own space, say) goes, so the
    # export always has its room.
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    os.makedirs(os.path.join(out, "models"), exist_ok=True)


def _plain(v, depth, cfg):
    t = cfg["templates"]
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        if abs(v) >= 10 ** cfg["max_int_digits"]:
            raise _Refused(t["too_big"].format(
                what="a whole number of more than %d digits" % cfg["max_int_digits"]))
        return int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _Refused(t["not_finite"])
        return float(v)
    if isinstance(v, str):
        if len(v) > cfg["max_str"]:
            raise _Refused(t["too_big"].format(what="a string of %d characters" % len(v)))
        return str(v)
    if type(v).__module__ == "numpy" and hasattr(v, "tolist"):
        if getattr(v, "size", 1) > cfg["max_items"]:
            raise _Refused(t["too_big"].format(what="an array of %d values" % v.size))
        return _plain(v.tolist(), depth, cfg)
    if isinstance(v, (list, tuple)) and depth < cfg["max_depth"]:
        if len(v) > cfg["max_items"]:
            raise _Refused(t["too_big"].format(what="a list of %d items" % len(v)))
        return [_plain(x, depth + 1, cfg) for x in v]
    raise _Refused(t["type"].format(type_name=_tname(v)))


def _answers(cfg, ns, errors):
    answers = {}
    for name in cfg["answers"]:
        if name in ns:
            try:
                answers[name] = _plain(ns[name], 0, cfg)
            except Exception as exc:
                errors[name] = _failure(exc)
    return answers


def _slim_optimizer(model):
    # The optimizer's slot variables (Adam keeps two per trained weight: a .keras file three
    # times the weights, seconds to write) are no evidence; its step counter is, and a fresh
    # optimizer of the same kind and settings holding that counter saves as the same groups.
    # The kernel ends after the export, so nothing needs the slots again. Anything unusual
    # keeps the original optimizer.
    old = getattr(model, "optimizer", None)
    if old is None:
        return
    try:
        fresh = type(old).from_config(old.get_config())
        fresh.iterations.assign(old.iterations)
        model.optimizer = fresh
    except Exception:
        pass


def _size(model):
    try:
        return int(model.count_params())
    except Exception:
        return 0


def _models(cfg, ns, errors):
    t, keras = cfg["templates"], sys.modules.get("keras")
    todo = []
    for name in cfg["models"]:
        if name not in ns:
            continue
        obj = ns[name]
        if keras is None or not isinstance(obj, keras.Model):
            errors[name] = t["not_keras"].format(type_name=_tname(obj))
            continue
        todo.append((name, obj))
    # The grader takes each model as soon as its file is complete (written aside, then renamed
    # into models/) and the checker starts loading it while the rest are written: largest first.
    todo.sort(key=lambda item: -_size(item[1]))
    models = os.path.join(cfg["export_dir"], "models")
    partial = os.path.join(models, ".partial")
    os.makedirs(partial, exist_ok=True)
    for name, obj in todo:
        _slim_optimizer(obj)
        aside = os.path.join(partial, name + ".keras")
        try:
            obj.save(aside)
            os.replace(aside, os.path.join(models, name + ".keras"))
        except Exception as exc:
            errors[name] = t["save_failed"].format(error="%s: %s" % (_tname(exc), str(exc)[:200]))


def _histories(cfg, ns, errors):
    t, histories, steps = cfg["templates"], {}, {}
    for name in cfg["histories"]:
        if name not in ns:
            continue
        obj = ns[name]
        try:  # a History says how many batches each epoch of its fit took
            per_epoch = getattr(obj, "params", None).get("steps")
            if type(per_epoch) is int:
                steps[name] = per_epoch
        except Exception:
            pass
        data = getattr(obj, "history", obj)
        try:
            if not isinstance(data, dict) or len(data) > cfg["max_keys"]:
                raise _Refused(t["history"].format(type_name=_tname(obj)))
            clean = {}
            for key, values in data.items():
                values = _plain(values, 1, cfg)
                if not isinstance(values, list):
                    raise _Refused(t["history"].format(type_name=_tname(obj)))
                clean[str(key)[:100]] = [float(x) for x in values]
            histories[name] = clean
        except Exception as exc:
            errors[name] = _failure(exc)
    return histories, steps


def __grader_export(cfg, ns):
    out = cfg["export_dir"]
    _drop_transformers()
    _empty_folder(out)
    errors = {}
    answers = _answers(cfg, ns, errors)
    _models(cfg, ns, errors)
    histories, steps = _histories(cfg, ns, errors)
    with open(os.path.join(out, "histories.json"), "w") as f:
        json.dump(histories, f, allow_nan=False)
    with open(os.path.join(out, "answers.json"), "w") as f:
        json.dump({"answers": answers, "errors": errors, "steps_per_epoch": steps}, f,
                  allow_nan=False)
    return "exported %d answers, %d histories, %d errors" % (len(answers), len(histories), len(errors))
