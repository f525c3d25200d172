"""End to end for the second assignment: calibrate param_counting from its reference, grade a
batch, and find both assignments in one gradebook.

Real parts only: the release, the sandboxed kernel, the confined checker reading .keras
files. param_counting needs no weights and no embeddings: the batch runs with weights mode
"none" and the embeddings cache stays empty. Expected scores come from the points of the
notebook's graded cells, never typed in.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from autograder.course.samples import reference_submission
from autograder.grading.calibrate import calibrate, calibration_seeds
from autograder.grading.jobs import discover, run_batch
from autograder.grading.pipeline import NO_WEIGHTS, make_context
from e2e_support import e2e_course

pytestmark = [pytest.mark.slow, pytest.mark.kernel, pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[2]
AID = "param_counting"
SOURCE = ROOT / "source" / AID / f"{AID}.ipynb"

# (student, {solution cell grade_id: (old, new)}, items that change must cost)
VARIANTS = {
    "reference": ({}, ()),
    "bn_counted_as_trainable": (
        {"a_batchnorm": ("bn_trainable_params = 2 * channels", "bn_trainable_params = 4 * channels"),
         }, ("q2_batchnorm",)),
    "bn_left_in_training_mode": (
        {"a_finetune": ('base.get_layer("base_bn").trainable = False\n', "")},
        ("q4_bn_inference", "q4_finetune_counts")),
    "forgot_to_unfreeze": (
        {"a_frozen_counts": ('for name in ("conv", "bn"):\n    counting_model.get_layer(name)'
                             '.trainable = True\n', "")},
        ("q3_frozen_counts", "q3_counting_model")),  # its counts no longer match the model
}


def _variant(changes: dict[str, tuple[str, str]]) -> nbformat.NotebookNode:
    nb = reference_submission(SOURCE)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in changes:
            old, new = changes[grade_id]
            assert old in cell.source, (grade_id, old)
            cell.source = cell.source.replace(old, new)
    return nb


@pytest.fixture(scope="module")
def pc_course(e2e_root):
    return e2e_course(e2e_root)


@pytest.fixture(scope="module")
def pc_key(pc_course, e2e_root):
    ctx = make_context(pc_course, AID, profile_name="reduced", out_dir=e2e_root / "out-pc",
                       weights_mode="stand-in", need_key=False)
    a = pc_course.config.assignment(AID)
    return ctx, calibrate(ctx, seeds=calibration_seeds(pc_course.config.grading.seed,
                                                        a.calibration_seeds))


@pytest.fixture(scope="module")
def pc_batch(pc_course, pc_key, e2e_root):
    subs = e2e_root / "submissions-pc"
    for student, (changes, _) in VARIANTS.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(_variant(changes), subs / student / f"{AID}.ipynb")
    (subs / "broken_file").mkdir()
    (subs / "broken_file" / f"{AID}.ipynb").write_text('{"cells": [')
    ctx = make_context(pc_course, AID, profile_name="reduced", out_dir=e2e_root / "out-pc",
                       weights_mode="stand-in", gradebook=e2e_root / "two-assignments.db")
    outcome = run_batch(ctx, discover([subs], notebook=f"{AID}.ipynb", assignment_id=AID))
    results = {p.parent.name: json.loads(p.read_text())
               for p in (e2e_root / "out-pc").glob("*/results.json")}
    return ctx, outcome, results


def test_calibration_needs_no_weights_and_keys_every_answer(pc_key, pc_course):
    """Is the key calibrated in weights mode "none", without embeddings, holding each answer
    and the two models' facts, with no accuracy thresholds or training section?"""
    ctx, key = pc_key
    assert ctx.weights_file is None and key["weights_mode"] == NO_WEIGHTS
    assert ctx.key_file.name == f"reduced-{NO_WEIGHTS}.json"
    assert set(key["answers"]) == set(pc_course.config.assignment(AID).answer_names)
    assert set(key["models"]) == {"counting_model", "ft_model"}
    assert key["thresholds"] == {} and "training" not in key
    counts = key["models"]["counting_model"]["counts"]
    assert (counts["total"], counts["trainable"], counts["non_trainable"]) == (
        key["answers"]["total_params"], key["answers"]["trainable_params"],
        key["answers"]["non_trainable_params"])
    assert max(key["reference_wall_s"]) < 60  # "grades in well under a minute"


def test_each_submission_gets_the_points_its_mistakes_leave(pc_batch, pc_course):
    """Does each variant score the notebook's total less exactly the points of the items its
    change breaks, with a reason on each lost item?"""
    _, outcome, results = pc_batch
    points = pc_course.config.assignment(AID).points
    total = sum(points.values())
    assert not outcome.failed
    for student, (_, broken) in VARIANTS.items():
        result = results[student]
        lost = {t["name"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}
        assert set(lost) == set(broken), (student, lost)
        assert all(lost.values())
        assert result["score"] == total - sum(points[i] for i in broken), student
        assert result["max_score"] == total
    assert results["broken_file"]["score"] == 0


def test_the_gradebook_holds_the_assignment_with_its_items(pc_batch, pc_course):
    from nbgrader.api import Gradebook

    ctx, _, results = pc_batch
    with Gradebook(f"sqlite:///{ctx.gradebook}") as gb:
        assignment = gb.find_assignment(AID)
        assert {c.name for c in assignment.notebooks[0].grade_cells} == set(
            pc_course.config.assignment(AID).points)
        sub = gb.find_submission(AID, "reference")
        assert sub.score == results["reference"]["score"]


def test_one_gradebook_holds_both_assignments(pc_batch, calibrated, e2e_root):
    """Graded into the same gradebook, do cnn_transfer and param_counting both show, each with
    its own max score from its own notebook?"""
    from nbgrader.api import Gradebook

    course, _ = calibrated
    ctx_pc, _, _ = pc_batch
    subs = e2e_root / "submissions-cnn-one"
    (subs / "reference").mkdir(parents=True)
    src = ROOT / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
    nbformat.write(reference_submission(src), subs / "reference" / "cnn_transfer.ipynb")
    ctx = make_context(course, "cnn_transfer", profile_name="reduced",
                       out_dir=e2e_root / "out-cnn-one", weights_mode="stand-in",
                       gradebook=ctx_pc.gradebook)
    outcome = run_batch(ctx, discover([subs], notebook="cnn_transfer.ipynb",
                                      assignment_id="cnn_transfer"))
    assert not outcome.failed
    with Gradebook(f"sqlite:///{ctx.gradebook}") as gb:
        names = {a.name: a.max_score for a in gb.assignments}
    assert names == {aid: sum(course.config.assignment(aid).points.values())
                     for aid in ("cnn_transfer", AID)}
