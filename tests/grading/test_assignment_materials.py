"""What an assignment declares it needs (images, the ResNet50 backbone, trainings, accuracy
inputs, step counts) decides what calibration and grading prepare: an assignment without a
backbone needs no weights and computes no embeddings; cnn_transfer keeps what it had."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from autograder.course.config import Course, check_config, load_course
from autograder.grading.calibrate import training_facts
from autograder.grading.pipeline import NO_WEIGHTS, make_context, with_embeddings

REPO = Path(__file__).resolve().parents[2]


def _bare(course: Course, **changes) -> Course:
    """The course with cnn_transfer declared as needing nothing (a kit assignment's default)."""
    first = dataclasses.replace(course.config.assignments[0], **changes)
    return Course(root=course.root, config=dataclasses.replace(
        course.config, assignments=(first, *course.config.assignments[1:])))


@pytest.fixture
def course_without_weights(tmp_path, monkeypatch):
    """The repository's course with an empty weights cache: imagenet weights cannot be found."""
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(REPO / "course_config.py", root / "course_config.py")
    for name in ("source", "release", "datasets"):
        (root / name).symlink_to(REPO / name)
    (root / "empty-weights").mkdir()
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(root / "empty-weights"))
    monkeypatch.delenv("COURSE_WEIGHTS_MODE", raising=False)
    return load_course(root)


def test_cnn_transfer_declares_what_it_had(course_without_weights):
    """Does cnn_transfer still train cnn/head/finetune, measure its three models and count
    cnn_model's steps, as the kit assumed before these became per-assignment?"""
    a = course_without_weights.config.assignment("cnn_transfer")
    assert a.uses_images and a.uses_backbone
    assert a.trainings == ("cnn", "head", "finetune")
    assert a.accuracy_inputs == {"cnn_model": "images", "tl_model": "embeddings",
                                 "ft_model": "images"}
    assert a.step_counted == {"cnn_model": "cnn"}


def test_an_assignment_without_a_backbone_needs_no_weights_and_no_embeddings(
        course_without_weights, tmp_path):
    """With no ImageNet file in the cache and no dataset, is the batch context still resolved
    (weights mode "none", no weights file), and does preparing the batch compute nothing?"""
    (course_without_weights.root / "datasets").unlink()
    course = _bare(course_without_weights, uses_images=False, uses_backbone=False, trainings=(),
                   accuracy_inputs={}, step_counted={})
    ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=tmp_path / "out",
                       weights_mode="imagenet", need_key=False)
    assert (ctx.weights_mode, ctx.weights_file) == (NO_WEIGHTS, None)
    assert ctx.key_file.name == f"reduced-{NO_WEIGHTS}.json"
    assert ctx.epochs() == {}
    assert with_embeddings(ctx) is ctx  # would start the trusted ResNet50 otherwise
    assert training_facts(ctx) is None
    assert not course.embeddings_dir.exists()


def test_a_backbone_assignment_still_asks_for_its_weights(course_without_weights, tmp_path):
    """Is the same course, with cnn_transfer as declared, refused for want of weights?"""
    from autograder.errors import WeightsError

    with pytest.raises(WeightsError):
        make_context(course_without_weights, "cnn_transfer", profile_name="reduced",
                     out_dir=tmp_path / "out", weights_mode="imagenet", need_key=False)


def test_epochs_are_those_of_the_declared_trainings(course_without_weights, tmp_path):
    """Does the checker get the epochs of the trainings the assignment names, and only those?"""
    course = _bare(course_without_weights, uses_backbone=False, trainings=("head",),
                   accuracy_inputs={}, step_counted={})
    ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=tmp_path / "o",
                       need_key=False)
    assert ctx.epochs() == {"head": course.config.profiles["reduced"].head_epochs}


@pytest.mark.parametrize("changes, field, words", [
    ({"trainings": ("warmup",)}, "assignments[0].trainings", "'warmup' is not a training"),
    ({"accuracy_inputs": {"nope_model": "images"}}, "assignments[0].accuracy_inputs",
     "'nope_model' is not in model_names"),
    ({"accuracy_inputs": {"cnn_model": "pixels"}}, "assignments[0].accuracy_inputs['cnn_model']",
     "'pixels' is unknown"),
    ({"uses_backbone": False}, "assignments[0].accuracy_inputs['tl_model']",
     "needs uses_backbone=True"),
    ({"step_counted": {"cnn_model": "head"}, "trainings": ("cnn",)},
     "assignments[0].step_counted['cnn_model']", "'head' is not in trainings"),
    ({"uses_images": False}, "assignments[0].step_counted", "needs the train split"),
])
def test_a_bad_declaration_names_its_field(course_without_weights, changes, field, words):
    """Is each inconsistent declaration reported under the field that holds it, with a fix?"""
    problems = check_config(_bare(course_without_weights, **changes), sections=("assignments",))
    assert any(p.startswith(field + ":") and words in p and " — " in p for p in problems), problems


def test_the_config_as_committed_is_valid(course_without_weights):
    assert check_config(course_without_weights, sections=("assignments",)) == []
