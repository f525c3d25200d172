"""The answer key is combined from per-seed fact sheets without typing any value in."""

import pytest

from autograder.errors import GradingError
from autograder.grading.calibrate import build_key, calibration_seeds


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
