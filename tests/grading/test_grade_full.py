"""The full specification once: 224 px, 10 epochs per model, calibrated and graded for real."""

from __future__ import annotations

import dataclasses
import json

import pytest

from autograder.course.config import load_course
from autograder.course.samples import write_samples
from autograder.grading.calibrate import calibrate
from autograder.grading.jobs import discover, run_batch
from autograder.grading.pipeline import make_context

from e2e_support import E2E_SEED, REPO, e2e_course

pytestmark = [pytest.mark.slow, pytest.mark.kernel, pytest.mark.sandbox]


def _accuracy_items(key: dict) -> set[str]:
    """Rubric items the key marks not assessable (by the model each accuracy item judges)."""
    items = {"cnn_model": "q2_cnn_accuracy", "tl_model": "q4_head_accuracy",
             "ft_model": "q5_finetune_accuracy"}
    return {items[m] for m in key.get("not_assessable", [])}


def test_reference_gets_full_marks_at_the_full_specification(e2e_root):
    """Does the reference solution, calibrated and graded at 224 px and 10 epochs with the
    default limits, get every point, with the recitation's shapes in its model summaries?"""
    course = e2e_course(e2e_root)
    a = course.config.assignments[0]
    shipped = load_course(REPO).config.limits  # the limits a real course ships with
    course = dataclasses.replace(course, config=dataclasses.replace(
        course.config, limits=shipped,
        assignments=(dataclasses.replace(a, calibration_seeds=(E2E_SEED,)),)))
    out = e2e_root / "full-out"
    ctx = make_context(course, "cnn_transfer", profile_name="full", out_dir=out,
                       weights_mode="stand-in", need_key=False)
    key = calibrate(ctx, seeds=(E2E_SEED,))
    assert key["answers"]["embedding_shape"] == [7, 7, 2048]
    subs = e2e_root / "full-subs"
    write_samples(REPO / "source" / "cnn_transfer" / "cnn_transfer.ipynb", subs, names=["reference"])
    outcome = run_batch(ctx, discover([subs], notebook="cnn_transfer.ipynb",
                                      assignment_id="cnn_transfer"))
    assert outcome.failed == {}
    result = json.loads((out / "reference" / "results.json").read_text())
    assert [t for t in result["tests"] if t["score"] < t["max_score"]] == []
    # Every point the key lets be assessed in this mode (an accuracy bar the reference cannot
    # clear with stand-in weights is left out of the maximum, labelled, never given).
    assessable = {n: v for n, v in a.points.items() if n not in _accuracy_items(key)}
    assert result["score"] == result["max_score"] == sum(assessable.values())
    page = (out / "reference" / "feedback.html").read_text()
    assert "(None, 7, 7, 2048)" in page  # the backbone's output in ft_model's summary
