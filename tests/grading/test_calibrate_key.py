"""The answer key is combined from per-seed fact sheets without typing any value in."""

import json
import os
import shutil
from pathlib import Path

import pytest

from autograder.course.config import load_course
from autograder.errors import ConfigError, GradingError
from autograder.grading.calibrate import build_key, calibration_seeds, key_fingerprint
from autograder.grading.pipeline import make_context


def sheet(seed, acc, conv1=416, chosen="tl"):
    layers = [{"type": "Conv2D", "output_shape": [None, 223, 223, 32], "params": conv1,
               "trainable": True}]
    return {"seed": seed, "wall_s": 10.0, "answers": {"conv1_params": conv1, "chosen_model": chosen},
            "models": {"cnn_model": {"layers": layers, "counts": {"total": conv1}}},
            "accuracy": {"cnn_model": acc}, "validation_accuracy": {"cnn_model": acc},
            "grading_majority_rate": 0.5}


def test_thresholds_follow_the_distribution_minus_the_margin():
    """Is the threshold the 10th percentile of the seeds' accuracies minus the margin?"""
    key = build_key([sheet(1, 0.80), sheet(2, 0.90), sheet(3, 0.70)], margin=0.15)
    assert key["accuracy"]["cnn_model"] == [0.80, 0.90, 0.70]
    assert key["thresholds"]["cnn_model"] == pytest.approx(0.72 - 0.15, abs=1e-4)
    assert key["answers"]["conv1_params"] == 416
    assert key["weak_thresholds"] == []


def test_a_threshold_below_chance_is_flagged():
    """Does calibration warn when an accuracy item cannot tell a trained model from a constant one?"""
    key = build_key([sheet(1, 0.55), sheet(2, 0.6)], margin=0.15)
    assert key["weak_thresholds"] == ["cnn_model"]


def test_seed_dependent_facts_are_refused():
    """Is a reference whose expected values change with the seed rejected, naming the fact?"""
    with pytest.raises(GradingError, match="conv1_params"):
        build_key([sheet(1, 0.8), sheet(2, 0.8, conv1=999)], margin=0.1)


def test_the_model_choice_may_vary_between_seeds():
    key = build_key([sheet(1, 0.8, chosen="tl"), sheet(2, 0.8, chosen="ft")], margin=0.1)
    assert key["seeds"] == [1, 2]


def test_the_grading_seed_is_always_calibrated_first():
    """Is the seed students are graded with always one of the calibration runs (so the reference
    solution, graded like a submission, reproduces a key run)?"""
    assert calibration_seeds(1234, (1, 2, 3)) == (1234, 1, 2, 3)
    assert calibration_seeds(2, (1, 2, 3)) == (2, 1, 3)


def test_a_stale_key_is_refused_with_the_command_that_fixes_it(tmp_path):
    """When the source notebook changes after calibration, does grading refuse the old key and
    name `course calibrate`?"""
    repo = Path(__file__).resolve().parents[2]
    shutil.copy(repo / "course_config.py", tmp_path / "course_config.py")
    shutil.copytree(repo / "source", tmp_path / "source")
    (tmp_path / "datasets").symlink_to(repo / "datasets")
    (tmp_path / "weights").mkdir()
    weights = tmp_path / "weights" / "resnet50_standin_notop.weights.h5"
    weights.write_bytes(b"stand-in")  # only its name and size enter the fingerprint
    os.environ["COURSE_WEIGHTS_DIR"] = str(tmp_path / "weights")
    try:
        course = load_course(tmp_path)
        ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=tmp_path / "o",
                           weights_mode="stand-in", need_key=False)
        ctx.key_file.parent.mkdir(parents=True)
        ctx.key_file.write_text(json.dumps({"fingerprint": key_fingerprint(ctx)}))
        make_context(course, "cnn_transfer", profile_name="reduced", out_dir=tmp_path / "o",
                     weights_mode="stand-in")  # current: accepted
        notebook = tmp_path / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
        notebook.write_text(notebook.read_text().replace("Shoes or handbags", "Shoes or bags"))
        with pytest.raises(ConfigError, match="stale answer key") as caught:
            make_context(course, "cnn_transfer", profile_name="reduced", out_dir=tmp_path / "o",
                         weights_mode="stand-in")
        assert "course calibrate cnn_transfer --profile reduced" in caught.value.hint
    finally:
        del os.environ["COURSE_WEIGHTS_DIR"]
