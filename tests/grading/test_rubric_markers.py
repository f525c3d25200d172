"""What cnn_transfer's rubric declares with markers: when Gradescope shows each check, and
which checks depend on the grading profile (read by the checker's plugin)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from autograder.grading.evidence import CheckInputs
from rubric_marks import rubric_tests

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "cnn_transfer"
RUBRIC = REPO / "autograder" / "rubric" / ASSIGNMENT
HIDDEN_SPLIT = {"grading_set", "grading_embeddings", "grading_mid"}
"""The fixtures that give a check the hidden grading split."""


def test_the_rubric_collects_under_strict_markers_without_errors(tmp_path):
    """Does the checker's own pytest command line (strict markers, the plugin) accept every
    marker the rubric uses?"""
    report = tmp_path / "report.json"
    inputs = CheckInputs(facts_dir=tmp_path, key_file=None, grading_dir=tmp_path,
                         validation_dir=tmp_path, weights_file=None, classes=("a", "b"),
                         image_size_px=32, epochs={"cnn": 1}, report_file=report)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(RUBRIC), "--collect-only", "-q", "-p",
         "no:cacheprovider", "-p", "autograder.grading.rubric_plugin", "-c", "/dev/null",
         "--strict-markers", "--rootdir", str(RUBRIC), "--import-mode=importlib"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **inputs.to_env()},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "rubric_errors" not in json.loads(report.read_text())


def test_exactly_the_checks_on_the_hidden_split_show_after_the_due_date():
    """Is every check that is judged on the hidden grading split (the accuracy items) shown on
    Gradescope only after the due date, so that resubmitting cannot be used to tune against
    it, and every other check shown at once?"""
    tests = rubric_tests(ASSIGNMENT)
    on_hidden_split = {name for name, t in tests.items() if HIDDEN_SPLIT & t.params}
    after_due = {name for name, t in tests.items()
                 if t.marks.get("visibility") == (("after_due_date",), {})}
    assert on_hidden_split and after_due == on_hidden_split
    assert all("visibility" not in t.marks for name, t in tests.items() if name not in after_due)


def test_accuracy_and_training_checks_declare_their_dependence_on_the_profile():
    """Does every check whose verdict depends on the profile's epochs (it reads
    ``inputs.epochs``) or on a pass mark calibrated per profile (the hidden-split accuracy
    checks) say so, naming a training the profiles set epochs for, and no other check?"""
    from autograder.course.settings import TRAININGS

    for name, t in rubric_tests(ASSIGNMENT).items():
        on_hidden_split = bool(HIDDEN_SPLIT & t.params)
        if t.reads_epochs or on_hidden_split:
            args, kwargs = t.marks["profile_dependent"]
            assert args == () and kwargs["epochs"] in TRAININGS, name
            assert kwargs.get("pass_mark", False) == on_hidden_split, name
        else:
            assert "profile_dependent" not in t.marks, name
