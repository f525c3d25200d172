"""Helpers for the param_counting notebook: the seed, and friendly checks of answers.

Shipped to students next to the notebook. It reads ``settings.json`` (written by the
instructor's ``course release`` from course_config.py); it needs only the standard library
until a check looks at a model.

What it deliberately does not do: grade. ``check(item)`` only catches mistakes that are
easy to fix right away (a name not defined yet, a float where a count is expected, a
model that is not a Keras model). The grader reads your answers and saved models later,
outside this kernel; a check that passes here means "well-formed", not "correct".
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SETTINGS_FILE = HERE / "settings.json"
SEED_ENV = "COURSE_SEED"  # the grader sets it, so grading and calibration runs are reproducible


class CourseSetupError(RuntimeError):
    """Something the instructor must set up (the settings file) is missing."""


def seed() -> int:
    """The course's seed ($COURSE_SEED when the grader runs the notebook)."""
    if os.environ.get(SEED_ENV):
        return int(os.environ[SEED_ENV])
    if not SETTINGS_FILE.is_file():
        raise CourseSetupError(
            f"{SETTINGS_FILE} is missing. Instructors: run `course release param_counting`, "
            "which writes it from course_config.py. Students: fetch the assignment again.")
    return int(json.loads(SETTINGS_FILE.read_text())["seed"])


# What counts as a well-formed answer; the grader applies these very functions to the
# exported values, so a cell that is green here is well-formed there.


def is_whole_number(value: Any) -> bool:
    """A Python int or a NumPy integer scalar; never a bool or a float."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    dtype = getattr(value, "dtype", None)
    return (type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0
            and getattr(dtype, "kind", None) in ("i", "u"))


def int_answer_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not a well-formed count for ``name`` (None when it is)."""
    if not is_whole_number(value):
        return f"your {name} should be an int (a whole number), not {type(value).__name__}"
    if value < 0:
        return f"your {name} should not be negative"
    return None


def shape_answer_problem(name: str, value: Any, length: int) -> str | None:
    """Why ``value`` is not a tuple of ``length`` positive ints (None when it is)."""
    if isinstance(value, (tuple, list)) and len(value) == length \
            and all(is_whole_number(v) and v > 0 for v in value):
        return None
    example = (1, 2, 3, 4)[:length]
    return f"your {name} should be a tuple of {length} positive ints like {example}, not {value!r}"


def _ints(ns: dict[str, Any], *names: str) -> list[str]:
    return [p for p in (int_answer_problem(n, ns[n]) for n in names) if p]


def _model(ns: dict[str, Any], name: str) -> list[str]:
    import keras  # only when a model is checked

    if not isinstance(ns[name], keras.Model):
        return [f"{name} should be a keras Model, not {type(ns[name]).__name__}"]
    return []


CHECKS: dict[str, tuple[str, ...]] = {
    "q1_dense_conv_params": ("dense_params", "conv_params"),
    "q1_pooling": ("pool_params", "pool_output_shape"),
    "q2_batchnorm": ("bn_params", "bn_trainable_params", "bn_non_trainable_params"),
    "q2_embedding": ("embedding_params",),
    "q3_counting_model": ("counting_model", "total_params", "trainable_params",
                          "non_trainable_params"),
    "q3_frozen_counts": ("frozen_trainable_params", "frozen_non_trainable_params"),
    "q4_frozen_base": ("ft_model", "ft_frozen_trainable_params", "ft_frozen_non_trainable_params"),
    "q4_finetune_counts": ("ft_model", "finetune_trainable_params",
                           "finetune_non_trainable_params"),
    "q4_bn_inference": ("ft_model",),
}
"""The names each graded item needs."""


def _problems(ns: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    out = []
    for name in names:
        if name.endswith("_model"):
            out += _model(ns, name)
        elif name.endswith("_shape"):
            problem = shape_answer_problem(name, ns[name], 3)
            out += [problem] if problem else []
        else:
            out += _ints(ns, name)
    return out


def check(item: str) -> None:
    """Check that the answers for one graded item are well-formed; raise a friendly error if
    not. It looks at the variables of the notebook that calls it."""
    if item not in CHECKS:
        raise KeyError(f"no public check named {item!r}; known: {', '.join(CHECKS)}")
    caller = inspect.currentframe()
    ns = caller.f_back.f_globals if caller and caller.f_back else {}
    names = CHECKS[item]
    missing = [n for n in names if n not in ns]
    problems = ([f"{n} is not defined yet: run the cells above that define it" for n in missing]
                or _problems(ns, names))
    if problems:
        raise AssertionError(f"{item}: " + "; ".join(problems))
    print(f"{item}: {', '.join(names)} well-formed (graded later, outside this notebook)")
