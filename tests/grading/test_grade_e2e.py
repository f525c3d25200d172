"""End to end: calibrate from the reference solution, then grade a batch of real submissions.

Real parts only: the release, the sandboxed kernel, TensorFlow training at the
reduced profile, the confined pytest checker, the report files. Expected scores
are derived from the points the notebook's graded cells carry, never typed in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.course.config import Course
from autograder.course.samples import write_samples
from autograder.grading import messages
from autograder.grading.jobs import discover, run_batch
from autograder.grading.pipeline import make_context

pytestmark = [pytest.mark.slow, pytest.mark.kernel, pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[2]


def test_calibration_derives_the_key_from_the_reference(calibrated):
    """Does the key hold the reference's answers and model facts, consistent with each other?"""
    course, key = calibrated
    assert key["profile"] == "reduced" and key["weights_mode"] == "stand-in"
    assert tuple(key["seeds"]) == course.config.assignments[0].calibration_seeds
    convs = [r for r in key["models"]["cnn_model"]["layers"] if r["type"] == "Conv2D"]
    assert [c["params"] for c in convs] == [key["answers"]["conv1_params"],
                                            key["answers"]["conv2_params"]]
    ft = key["models"]["ft_model"]
    assert ft["counts"]["trainable"] == key["answers"]["ft_trainable_params"]
    assert sum(ft["backbone_trainable"]) == 10
    assert len(ft["backbone_trainable"]) == key["answers"]["backbone_layers"]
    for model in ("cnn_model", "tl_model", "ft_model"):
        assert len(key["accuracy"][model]) == 2
        assert key["thresholds"][model] > key["grading_majority_rate"]  # a bar that can fail
        if model not in key["not_assessable"]:
            assert key["thresholds"][model] <= min(key["accuracy"][model])


def test_calibration_runs_the_seeds_at_once_in_the_courses_slots(calibrated, calibration_reports):
    """With two grading slots and two seeds, do both reference runs go at once: from the runs'
    start to the last one's end took less than their own run times added up (one after the
    other, it could not), with one report as each run ends?"""
    course, key = calibrated
    seeds = course.config.assignments[0].calibration_seeds
    assert course.config.grading.concurrency == 2 and len(seeds) == 2
    starts = [t for t, _, _, what in calibration_reports if what.startswith("reference runs, seeds ")]
    ends = [(t, done, what) for t, done, _, what in calibration_reports
            if what.startswith("reference run, seed ")]
    assert len(starts) == 1 and [done for _, done, _ in ends] == [1, 2]
    assert sorted(what for _, _, what in ends) == sorted(f"reference run, seed {s}" for s in seeds)
    assert ends[-1][0] - starts[0] < sum(key["reference_wall_s"])


@pytest.fixture(scope="module")
def graded_batch(calibrated, e2e_root):
    course, _ = calibrated
    subs = e2e_root / "submissions"
    source = ROOT / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
    write_samples(source, subs, names=["reference", "wrong_params", "unfrozen_backbone",
                                       "wider_head", "forger"])
    (subs / "broken_file").mkdir()
    (subs / "broken_file" / "cnn_transfer.ipynb").write_text('{"cells": [')
    (subs / "empty").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), subs / "empty" / "cnn_transfer.ipynb")
    out = e2e_root / "out"
    ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=out,
                       weights_mode="stand-in")
    jobs = discover([subs], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer")
    outcome = run_batch(ctx, jobs)
    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}
    return course, outcome, results


def _points(course: Course) -> dict[str, float]:
    return course.config.assignments[0].points


def _failed(result: dict) -> dict[str, str]:
    return {t["name"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}


def test_the_batch_finishes_with_every_submission_graded(graded_batch):
    """Does every submission, broken ones included, end with a results file and no grader error?"""
    course, outcome, results = graded_batch
    assert outcome.failed == {}
    assert set(results) == {"reference", "wrong_params", "unfrozen_backbone", "wider_head",
                            "forger", "broken_file", "empty"}
    assert outcome.grades_csv.read_text().count("\n") == 1 + len(results)


def test_the_reference_solution_gets_full_marks(graded_batch):
    course, _, results = graded_batch
    ref = results["reference"]
    assert _failed(ref) == {}, _failed(ref)
    assert ref["score"] == ref["max_score"] == sum(t["max_score"] for t in ref["tests"])
    assert messages.STAND_IN_LABEL in ref["output"]


def test_wrong_parameter_counts_cost_only_those_items(graded_batch):
    """Does forgetting the bias cost the arithmetic item and the frozen-count prediction, nothing else?"""
    course, _, results = graded_batch
    failed = _failed(results["wrong_params"])
    assert set(failed) == {"q1_conv_params", "q3_frozen_counts"}
    assert "plus one bias per filter" in failed["q1_conv_params"]
    p = _points(course)
    assert results["wrong_params"]["score"] == (results["wrong_params"]["max_score"]
                                                - p["q1_conv_params"] - p["q3_frozen_counts"])


def test_an_unfrozen_backbone_is_caught_from_the_saved_model(graded_batch):
    course, _, results = graded_batch
    failed = _failed(results["unfrozen_backbone"])
    assert set(failed) == {"q5_finetune_frozen"}
    assert "freeze everything except the last 10 layers" in failed["q5_finetune_frozen"]


def test_a_different_valid_architecture_gets_full_marks(graded_batch):
    """Does a wider hidden layer with dropout, which the rubric allows, lose nothing?"""
    course, _, results = graded_batch
    assert _failed(results["wider_head"]) == {}


def test_kernel_side_forgery_changes_nothing(graded_batch):
    """Do patched numpy testing, a fake count_params, an input transformer and edited points
    leave the forger with exactly the score of its real work?"""
    course, _, results = graded_batch
    p = _points(course)
    assert set(_failed(results["forger"])) == {"q1_conv_params", "q3_frozen_counts",
                                               "q5_finetune_frozen"}
    assert results["forger"]["max_score"] == results["reference"]["max_score"]


def test_a_broken_file_gets_a_clear_zero(graded_batch):
    course, _, results = graded_batch
    broken = results["broken_file"]
    assert broken["score"] == 0
    assert "is not valid JSON" in broken["tests"][0]["output"]
    assert "resubmit" in broken["tests"][0]["output"] or "submit again" in broken["tests"][0]["output"]


def test_an_empty_notebook_gets_a_clear_zero(graded_batch):
    course, _, results = graded_batch
    empty = results["empty"]
    assert empty["score"] == 0
    assert all("has no code cells" in t["output"] for t in empty["tests"]), empty["tests"]


def test_feedback_page_shows_summary_curves_and_cells(graded_batch, e2e_root):
    page = (e2e_root / "out" / "reference" / "feedback.html").read_text()
    assert "Model summary: cnn_model" in page and "Conv2D" in page
    assert "<svg" in page and "cnn_history" in page
    assert "Against the 120 s limit per cell" in page
    assert "BEGIN HIDDEN TESTS" not in page and "rubric" not in page.split("<h2>Rubric</h2>")[0]


def test_a_killed_batch_resumes_without_losing_or_double_counting(calibrated, e2e_root):
    """After `course grade` is killed with SIGKILL mid-batch, does a re-run finish the rest
    and count each student exactly once?"""
    course, _ = calibrated
    subs = e2e_root / "resume-subs"
    for student in ("ann", "ben", "cat"):
        (subs / student).mkdir(parents=True)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("conv1_params = 416")])
        nbformat.write(nb, subs / student / "cnn_transfer.ipynb")
    config_py = e2e_root / "course_config.py"
    original = config_py.read_text()
    margin = course.config.assignments[0].accuracy_margin  # the key was calibrated with it
    config_py.write_text(original.replace("concurrency=2", "concurrency=1").replace(
        'GradingSettings(', f'GradingSettings(answer_key_dir="{e2e_root / "keys"}", ').replace(
        "accuracy_margin=0.15", f"accuracy_margin={margin}"))
    out = e2e_root / "resume-out"
    argv = [sys.executable, "-m", "autograder.cli", "grade", "cnn_transfer", str(subs),
            "--out", str(out), "--profile", "reduced", "--weights-mode", "stand-in"]
    env = {**os.environ, "COURSE_ROOT": str(e2e_root)}
    try:
        proc = subprocess.Popen(argv, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not list(out.glob("*/results.json")) and time.monotonic() < deadline:
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        first = {p.parent.name for p in out.glob("*/results.json")}
        assert 1 <= len(first) < 3
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "skipped (already graded" in done.stdout, done.stdout + done.stderr
        rows = (out / "grades.csv").read_text().splitlines()[1:]
        assert sorted(r.split(",")[0] for r in rows) == ["ann", "ben", "cat"]
    finally:
        config_py.write_text(original)
