"""Stand-in ResNet50 weights: the same architecture with untrained, seeded weights.

Used where the ImageNet file cannot be had (offline demos, CI). The weights are a
*file*, generated once from a fixed seed and kept beside the real one, so the
student's kernel and the grader's trusted checker embed images with the very same
network (the transfer-learning head is graded on embeddings). Every number
produced with it is labelled "stand-in" in demo output and feedback.
"""

from __future__ import annotations

import os
from pathlib import Path

from autograder.course.config import Course
from autograder.course.weights import (
    IMAGENET,
    MODE_ENV,
    STAND_IN,
    resolve_weights,
    weights_dir,
)
from autograder.errors import WeightsError
from autograder.keras_import import import_keras

STAND_IN_FILE = "resnet50_standin_notop.weights.h5"
STAND_IN_SEED = 50


def standin_path(course: Course) -> Path:
    return weights_dir(course) / STAND_IN_FILE


def ensure_standin_weights(course: Course) -> Path:
    """The stand-in weights file, generated on first use (needs write access to the cache)."""
    path = standin_path(course)
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
    except OSError as exc:
        raise WeightsError(f"cannot create {path.parent}: {exc.strerror}",
                           hint="run `course weights stand-in` as a user who may write there") from None
    keras = import_keras()

    keras.utils.set_random_seed(STAND_IN_SEED)
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(224, 224, 3))
    tmp = path.with_name(path.name + ".partial.weights.h5")
    model.save_weights(tmp)
    tmp.chmod(0o444)
    tmp.replace(path)
    return path


def grader_weights(course: Course, *, mode: str | None = None) -> tuple[str, Path]:
    """(mode, file) the grader and the sandbox use: the verified ImageNet file, or the stand-in."""
    mode = mode or os.environ.get(MODE_ENV) or course.config.weights.mode
    if mode == STAND_IN:
        return STAND_IN, ensure_standin_weights(course)
    if mode != IMAGENET:
        raise WeightsError(f"unknown weights mode {mode!r}", hint=f"use {IMAGENET!r} or {STAND_IN!r}")
    path = resolve_weights(course)
    if path is None:  # $COURSE_WEIGHTS_MODE asked for stand-in over an explicit mode
        return STAND_IN, ensure_standin_weights(course)
    return IMAGENET, path
