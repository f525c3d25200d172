"""Helpers for the cnn_transfer notebook: settings, data, weights, and friendly checks.

This file is shipped to students next to the notebook. It reads ``settings.json``
(written by the instructor's ``course release`` from course_config.py) and the
environment; it needs only the standard library until a check looks at a model.

What it deliberately does not do: grade. ``check(item)`` only catches the
mistakes that are easy to fix right away (a name not defined yet, a float where
an int is expected, a model with the wrong input shape). The real grading runs
later, outside this kernel, on a held-out split that is not in this folder; a
check that passes here means "well-formed", not "correct".
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SETTINGS_FILE = HERE / "settings.json"
PROFILE_ENV = "COURSE_PROFILE"
DATA_ENV = "COURSE_DATA_DIR"
WEIGHTS_DIR_ENV = "COURSE_WEIGHTS_DIR"
SEED_ENV = "COURSE_SEED"  # the grader sets it, so grading and calibration runs are reproducible
WEIGHTS_MODE_ENV = "COURSE_WEIGHTS_MODE"
STAND_IN = "stand-in"
STAND_IN_BANNER = (
    "=" * 72
    + "\nSTAND-IN WEIGHTS (untrained) — numbers below are not ImageNet results.\n"
    "ResNet50 is built with random weights because this machine runs in stand-in mode.\n"
    + "=" * 72
)


class CourseSetupError(RuntimeError):
    """Something the instructor must set up (settings, data, weights) is missing."""


@dataclass(frozen=True)
class Settings:
    """The active profile: every size the notebook uses comes from here."""

    profile: str
    image_size_px: int
    batch_size: int
    cnn_epochs: int
    head_epochs: int
    finetune_epochs: int
    classes: tuple[str, ...]
    seed: int


@functools.lru_cache(maxsize=1)
def _raw_settings() -> dict[str, Any]:
    if not SETTINGS_FILE.is_file():
        raise CourseSetupError(
            f"{SETTINGS_FILE} is missing. Instructors: run `course release cnn_transfer`, "
            "which writes it from course_config.py. Students: fetch the assignment again."
        )
    return json.loads(SETTINGS_FILE.read_text())


def settings() -> Settings:
    """Sizes, epochs, classes and seed of the active profile ($COURSE_PROFILE or the default)."""
    raw = _raw_settings()
    name = os.environ.get(PROFILE_ENV) or raw["default_profile"]
    if name not in raw["profiles"]:
        known = ", ".join(sorted(raw["profiles"]))
        raise CourseSetupError(f"unknown profile {name!r} in ${PROFILE_ENV}; use one of: {known}")
    p = raw["profiles"][name]
    return Settings(
        profile=name,
        image_size_px=int(p["image_size_px"]),
        batch_size=int(raw["batch_size"]),
        cnn_epochs=int(p["cnn_epochs"]),
        head_epochs=int(p["head_epochs"]),
        finetune_epochs=int(p["finetune_epochs"]),
        classes=tuple(raw["classes"]),
        seed=int(os.environ.get(SEED_ENV) or raw["seed"]),
    )


def data_dir() -> Path:
    """The folder holding ``train/``, ``validation/`` and ``test/``: $COURSE_DATA_DIR or ./data."""
    folder = Path(os.environ.get(DATA_ENV) or HERE / "data")
    missing = [s for s in ("train", "validation", "test") if not (folder / s).is_dir()]
    if missing:
        raise CourseSetupError(
            f"{folder} has no {', '.join(missing)} folder. Keep the data/ folder that came "
            f"with the assignment next to the notebook, or set ${DATA_ENV}."
        )
    return folder


def weights_mode() -> str:
    """``stand-in`` ($COURSE_WEIGHTS_MODE or settings) or ``imagenet``."""
    return os.environ.get(WEIGHTS_MODE_ENV) or _raw_settings()["weights"]["mode"]


@functools.lru_cache(maxsize=1)
def _verified_weights(path: Path, md5: str) -> Path:
    # Hash once per kernel: the file is ~95 MB and the notebook may ask twice.
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != md5:
        raise CourseSetupError(
            f"{path} is corrupt (md5 {digest.hexdigest()}, expected {md5}). Instructors: "
            "re-seed it with `course weights import FILE` or `course weights fetch`."
        )
    return path


def _weights_folder() -> Path:
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or _raw_settings()["weights"]["cache_dir"])


def resnet50_weights() -> Path | None:
    """The ResNet50 weights file to pass as ``ResNet50(weights=...)``.

    Normally the verified ImageNet file from the course's read-only cache: Keras
    is never asked to download. In stand-in mode it prints a loud banner and
    returns the course's seeded stand-in file when the cache has one (so the
    grader embeds images with the very same network), else None (random weights).
    """
    w = _raw_settings()["weights"]
    if weights_mode() == STAND_IN:
        print(STAND_IN_BANNER)
        standin = _weights_folder() / w.get("standin_file_name", "")
        return standin if w.get("standin_file_name") and standin.is_file() else None
    path = _weights_folder() / w["file_name"]
    if not path.is_file():
        raise CourseSetupError(
            f"the ResNet50 weights are not at {path}. Instructors: seed the cache with "
            "`course weights import FILE` (or `course weights fetch` on a machine with "
            f"internet); to run without them, set {WEIGHTS_MODE_ENV}={STAND_IN}."
        )
    return _verified_weights(path, w["md5"])


# ---------------------------------------------------------------------------
# Public checks. Each returns a list of problems in plain words; check() raises
# one AssertionError listing them so the cell turns red right where the work is.


# What counts as a well-formed answer. The grader applies these very functions to the
# exported values (it loads this file), so a cell that is green here is well-formed there.


def is_whole_number(value: Any) -> bool:
    """A Python int or a NumPy integer scalar (``np.int64(416)``); never a bool or a float."""
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
    """Why ``value`` is not a well-formed shape of ``length`` sides (None when it is). A tuple is
    asked for; a list of the same ints is the same answer (the grader receives both as lists)."""
    if isinstance(value, (tuple, list)) and len(value) == length \
            and all(is_whole_number(v) and v > 0 for v in value):
        return None
    example = (1, 2, 3, 4)[:length]
    return f"your {name} should be a tuple of {length} positive ints like {example}, not {value!r}"


def choice_answer_problem(name: str, value: Any, options: tuple[str, ...]) -> str | None:
    if isinstance(value, str) and value in options:
        return None
    return f"{name} should be the string " + " or ".join(f'"{o}"' for o in options)


MODEL_CHOICES = ("tl", "ft")


def _want_int(ns: dict[str, Any], *names: str) -> list[str]:
    return [p for p in (int_answer_problem(name, ns[name]) for name in names) if p]


def _want_shape(ns: dict[str, Any], name: str, length: int) -> list[str]:
    problem = shape_answer_problem(name, ns[name], length)
    return [problem] if problem else []


def _history(ns: dict[str, Any], name: str, epochs: int) -> list[str]:
    value = ns[name]
    hist = getattr(value, "history", value)
    if not isinstance(hist, dict):
        return [f"{name} should be what model.fit(...) returned (a History object)"]
    out = [f"{name} has no {key!r}: did you pass validation data to fit?"
           for key in ("loss", "accuracy", "val_loss", "val_accuracy") if key not in hist]
    if not out and len(hist["loss"]) != epochs:
        out.append(f"{name} covers {len(hist['loss'])} epochs; this profile asks for {epochs}")
    if not out and not all(0.0 <= v <= 1.0 for v in hist["val_accuracy"]):
        out.append(f"{name}'s val_accuracy should be between 0 and 1")
    return out


def _model(ns: dict[str, Any], name: str, in_shape: tuple[int, ...]) -> list[str]:
    import keras  # only when a model is checked: the other checks need no TensorFlow

    model = ns[name]
    if not isinstance(model, keras.Model):
        return [f"{name} should be a keras Model, not {type(model).__name__}"]
    out = []
    got_in = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if got_in != in_shape:
        out.append(f"{name} should take inputs of shape {in_shape}, it takes {model.input_shape}")
    if tuple(model.output_shape[1:]) != (1,):
        out.append(f"{name} should output one probability per image, its output is {model.output_shape}")
    return out


def _compiled(ns: dict[str, Any], name: str) -> list[str]:
    model = ns[name]
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        return [f"{name} is not compiled yet: call {name}.compile(loss=..., optimizer=..., metrics=...)"]
    return []


def _checks(ns: dict[str, Any], item: str) -> tuple[tuple[str, ...], list[str]]:
    """The names an item needs, and a function of the namespace listing problems."""
    s = settings()
    image = (s.image_size_px, s.image_size_px, 3)
    table = {
        "q1_conv_params": (("conv1_params", "conv2_params"),
                           lambda: _want_int(ns, "conv1_params", "conv2_params")),
        "q1_output_shapes": (("shape_stride1_valid", "shape_stride2_valid", "shape_stride2_same"),
                             lambda: [p for n in ("shape_stride1_valid", "shape_stride2_valid",
                                                  "shape_stride2_same") for p in _want_shape(ns, n, 3)]),
        "q2_cnn_architecture": (("cnn_model",), lambda: _model(ns, "cnn_model", image)),
        "q2_cnn_compile": (("cnn_model",), lambda: _compiled(ns, "cnn_model")),
        "q2_cnn_trained": (("cnn_history",), lambda: _history(ns, "cnn_history", s.cnn_epochs)),
        "q2_cnn_accuracy": (("cnn_history",), lambda: _history(ns, "cnn_history", s.cnn_epochs)),
        "q3_kernel_shape": (("conv1_kernel_shape",), lambda: _want_shape(ns, "conv1_kernel_shape", 4)),
        "q3_frozen_counts": (("frozen_trainable_params", "frozen_non_trainable_params", "cnn_model"),
                             lambda: _want_int(ns, "frozen_trainable_params", "frozen_non_trainable_params")
                             + ([] if all(layer.trainable for layer in ns["cnn_model"].layers)
                                else ["unfreeze cnn_model's layers again once you have counted"])),
        "q4_backbone_facts": (("backbone_layers", "backbone_params", "embedding_shape"),
                              lambda: _want_int(ns, "backbone_layers", "backbone_params")
                              + _want_shape(ns, "embedding_shape", 3)),
        "q4_head_architecture": (("tl_model", "embedding_shape"),
                                 lambda: _model(ns, "tl_model", tuple(ns["embedding_shape"]))),
        "q4_head_accuracy": (("tl_history",), lambda: _history(ns, "tl_history", s.head_epochs)),
        "q5_finetune_frozen": (("ft_model", "ft_trainable_params"),
                               lambda: _model(ns, "ft_model", image) + _compiled(ns, "ft_model")
                               + _want_int(ns, "ft_trainable_params")),
        "q5_finetune_accuracy": (("ft_history",), lambda: _history(ns, "ft_history", s.finetune_epochs)),
        "q5_model_choice": (("chosen_model",),
                            lambda: [p for p in [choice_answer_problem(
                                "chosen_model", ns["chosen_model"], MODEL_CHOICES)] if p]),
    }
    if item not in table:
        raise KeyError(f"no public check named {item!r}; known: {', '.join(table)}")
    names, run = table[item]
    missing = [n for n in names if n not in ns]
    if missing:
        return names, [f"{n} is not defined yet: run the cells above that define it" for n in missing]
    return names, run()


def check(item: str) -> None:
    """Check that the answers for one rubric item are well-formed; raise a friendly error if not.

    It looks at the variables of the notebook that calls it (never at the grading data).
    """
    caller = inspect.currentframe()
    ns = caller.f_back.f_globals if caller and caller.f_back else {}
    names, problems = _checks(ns, item)
    if problems:
        raise AssertionError(f"{item}: " + "; ".join(problems))
    print(f"{item}: {', '.join(names)} well-formed (graded later on a held-out split)")
