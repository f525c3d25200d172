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


def _recitation_numbers(key: dict) -> None:
    """The seed's numbers, as the reference's exported models report them at 224 px (the key
    is calibrated from that export, never from the kernel's own variables)."""
    a, m = key["answers"], key["models"]
    assert (a["conv1_params"], a["conv2_params"]) == (416, 4128)
    assert (a["shape_stride1_valid"], a["shape_stride2_valid"], a["shape_stride2_same"]) == (
        [223, 223, 32], [112, 112, 32], [112, 112, 32])
    assert a["conv1_kernel_shape"] == [2, 2, 3, 32]
    cnn = m["cnn_model"]
    assert cnn["layers"][0]["output_shape"] == [None, 224, 224, 3]
    assert cnn["counts"]["trainable"] == cnn["counts"]["total"]  # unfrozen again before export
    assert a["frozen_non_trainable_params"] == 416 + 4128
    assert a["frozen_trainable_params"] == cnn["counts"]["total"] - 4544
    assert (a["backbone_layers"], a["backbone_params"]) == (175, 23_587_712)
    assert a["embedding_shape"] == [7, 7, 2048]
    assert m["tl_model"]["counts"]["total"] == 25_690_625
    ft = m["ft_model"]["counts"]
    assert (a["ft_trainable_params"], ft["trainable"], ft["total"]) == (30_156_289, 30_156_289, 49_278_337)
    assert m["ft_model"]["tail_max_diff"] < 1e-4
    assert a["chosen_model"] in ("tl", "ft")


def test_reference_gets_full_marks_at_the_full_specification(e2e_root):
    """Does the reference solution, calibrated and graded at 224 px and 10 epochs with the
    default limits, get every point, with the recitation's numbers in its key and shapes in
    its model summaries?"""
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
    _recitation_numbers(key)
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
