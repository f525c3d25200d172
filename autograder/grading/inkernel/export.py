# The export, run inside the student's kernel after the last cell (see grading/export.py).
# Parameters arrive as a JSON literal (no string formatting of names into code). Errors
# for one name never stop the others. Sent to the kernel as text (see inkernel/__init__.py);
# comments only up here, no docstring. (get_ipython is a name of the kernel, not of this file.)

def __grader_export(cfg, ns):
    import json, math, os, sys
    out = cfg["export_dir"]
    t = cfg["templates"]
    # A student-installed transformer cannot touch this code, but a later cell of ours
    # might; drop them anyway.
    try:
        ip = get_ipython()
        ip.input_transformers_post[:] = []
        ip.ast_transformers[:] = []
    except Exception:
        pass
    # Start from an empty folder: whatever a cell left here (a file filling this folder's
    # own space, say) goes, so the export always has its room.
    import shutil
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    os.makedirs(os.path.join(out, "models"), exist_ok=True)

    class Refused(Exception):
        pass

    def tname(v):
        return type(v).__name__[:60]

    def plain(v, depth):
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int):
            if abs(v) >= 10 ** cfg["max_int_digits"]:
                raise Refused(t["too_big"].format(
                    what="a whole number of more than %d digits" % cfg["max_int_digits"]))
            return int(v)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise Refused(t["not_finite"])
            return float(v)
        if isinstance(v, str):
            if len(v) > cfg["max_str"]:
                raise Refused(t["too_big"].format(what="a string of %d characters" % len(v)))
            return str(v)
        if type(v).__module__ == "numpy" and hasattr(v, "tolist"):
            if getattr(v, "size", 1) > cfg["max_items"]:
                raise Refused(t["too_big"].format(what="an array of %d values" % v.size))
            return plain(v.tolist(), depth)
        if isinstance(v, (list, tuple)) and depth < cfg["max_depth"]:
            if len(v) > cfg["max_items"]:
                raise Refused(t["too_big"].format(what="a list of %d items" % len(v)))
            return [plain(x, depth + 1) for x in v]
        raise Refused(t["type"].format(type_name=tname(v)))

    answers, errors = {}, {}
    for name in cfg["answers"]:
        if name in ns:
            try:
                answers[name] = plain(ns[name], 0)
            except Refused as exc:
                errors[name] = str(exc)
            except Exception as exc:
                errors[name] = "%s: %s" % (tname(exc), str(exc)[:200])
    keras = sys.modules.get("keras")
    for name in cfg["models"]:
        if name not in ns:
            continue
        obj = ns[name]
        if keras is None or not isinstance(obj, keras.Model):
            errors[name] = t["not_keras"].format(type_name=tname(obj))
            continue
        try:
            obj.save(os.path.join(out, "models", name + ".keras"))
        except Exception as exc:
            errors[name] = t["save_failed"].format(error="%s: %s" % (tname(exc), str(exc)[:200]))
    histories = {}
    for name in cfg["histories"]:
        if name not in ns:
            continue
        obj = ns[name]
        data = getattr(obj, "history", obj)
        try:
            if not isinstance(data, dict) or len(data) > cfg["max_keys"]:
                raise Refused(t["history"].format(type_name=tname(obj)))
            clean = {}
            for key, values in data.items():
                values = plain(values, 1)
                if not isinstance(values, list):
                    raise Refused(t["history"].format(type_name=tname(obj)))
                clean[str(key)[:100]] = [float(x) for x in values]
            histories[name] = clean
        except Refused as exc:
            errors[name] = str(exc)
        except Exception as exc:
            errors[name] = "%s: %s" % (tname(exc), str(exc)[:200])
    with open(os.path.join(out, "histories.json"), "w") as f:
        json.dump(histories, f, allow_nan=False)
    with open(os.path.join(out, "answers.json"), "w") as f:
        json.dump({"answers": answers, "errors": errors}, f, allow_nan=False)
    return "exported %d answers, %d histories, %d errors" % (len(answers), len(histories), len(errors))
