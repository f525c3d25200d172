"""The answer key is combined from per-seed fact sheets without typing any value in."""

import json
import os
import shutil
from pathlib import Path

import pytest

from autograder.course.config import load_course
from autograder.errors import ConfigError, GradingError
from autograder.grading.calibrate import (
    accuracy_floor,
    build_key,
    MIN_RUNS_FOR_SPREAD,
    calibration_seeds,
    few_runs_warning,
    steps_per_epoch,
)
from autograder.grading.pipeline import make_context


GRADING_SIZE = 120
TRAINING = {"n_train": 97, "batch_size": 32, "epochs": {"cnn": 5, "head": 5, "finetune": 2},
            "counted": {"cnn_model": "cnn"}}


def sheet(seed, acc, conv1=416, chosen="tl", *, majority=0.5, steps=None, tail_diff=0.0):
    layers = [{"type": "Conv2D", "output_shape": [None, 223, 223, 32], "params": conv1,
               "trainable": True}]
    if steps is None:
        steps = TRAINING["epochs"]["cnn"] * steps_per_epoch(TRAINING)
    return {"seed": seed, "wall_s": 10.0, "answers": {"conv1_params": conv1, "chosen_model": chosen},
            "models": {"cnn_model": {"layers": layers, "counts": {"total": conv1},
                                     "optimizer_iterations": steps},
                       "ft_model": {"layers": [], "counts": {"total": 1}, "tail_max_diff": tail_diff}},
            "accuracy": {"cnn_model": acc}, "validation_accuracy": {"cnn_model": acc},
            "grading_majority_rate": majority, "grading_size": GRADING_SIZE}


def test_thresholds_follow_the_distribution_minus_the_margin():
    """Is the threshold the 10th percentile of the seeds' accuracies minus the margin, when that
    is above the floor?"""
    key = build_key([sheet(1, 0.90), sheet(2, 0.95), sheet(3, 0.85)], margin=0.15)
    assert key["accuracy"]["cnn_model"] == [0.90, 0.95, 0.85]
    assert key["thresholds"]["cnn_model"] == pytest.approx(0.86 - 0.15, abs=1e-4)
    assert key["headroom"]["cnn_model"] == pytest.approx(0.85 - (0.86 - 0.15), abs=1e-4)
    assert key["answers"]["conv1_params"] == 416
    assert key["not_assessable"] == {} and key["weak_thresholds"] == []


def test_staff_are_warned_when_too_few_runs_set_a_pass_mark():
    """A pass mark from one or two reference runs knows nothing of how far honest training
    varies: is staff told so, naming the items, only when an accuracy item is assessed from
    fewer than MIN_RUNS_FOR_SPREAD runs?"""
    few = build_key([sheet(seed, 0.95) for seed in range(1, MIN_RUNS_FOR_SPREAD)], margin=0.15)
    assert few["not_assessable"] == {}
    warning = few_runs_warning(few)
    assert warning is not None and "cnn_model" in warning and "--seeds" in warning
    enough = build_key([sheet(seed, 0.95) for seed in range(1, MIN_RUNS_FOR_SPREAD + 1)], margin=0.15)
    assert few_runs_warning(enough) is None
    # an item left unassessed gives no pass mark to warn about
    collapsed = build_key([sheet(1, 0.95), sheet(2, 0.5)], margin=0.15)
    assert collapsed["not_assessable"] and few_runs_warning(collapsed) is None


def test_a_threshold_never_sits_at_or_below_the_majority_rate():
    """With a wide margin, is the threshold raised to majority + 2 standard errors at the split's
    size, so that a model answering one class for every image cannot reach it?"""
    for majority in (0.5, 0.6, 0.75):
        key = build_key([sheet(1, 0.97, majority=majority), sheet(2, 0.99, majority=majority)],
                        margin=0.5)
        floor = accuracy_floor(majority, GRADING_SIZE)
        assert key["thresholds"]["cnn_model"] >= floor > majority
        assert key["accuracy_floor"] >= floor
        assert key["not_assessable"] == {}


def test_an_item_the_reference_cannot_clear_is_not_assessable():
    """When the reference runs themselves stay under the floor (stand-in weights, a short
    profile), is the item marked not assessable, naming the numbers, rather than given away?"""
    key = build_key([sheet(1, 0.55), sheet(2, 0.6)], margin=0.15)
    assert set(key["not_assessable"]) == {"cnn_model"} == set(key["weak_thresholds"])
    assert "55%" in key["not_assessable"]["cnn_model"]
    assert key["thresholds"]["cnn_model"] > key["grading_majority_rate"]
    assert key["headroom"]["cnn_model"] < 0


def test_the_reference_must_train_for_exactly_the_expected_steps():
    """Is the expected optimizer step count derived from the data and batch size, and a reference
    that trained for anything else refused?"""
    key = build_key([sheet(1, 0.9), sheet(2, 0.9)], margin=0.1, training=TRAINING)
    assert key["training"]["steps_per_epoch"] == -(-TRAINING["n_train"] // TRAINING["batch_size"])
    assert "counted" not in key["training"]  # the key's format is what the rubric reads
    with pytest.raises(GradingError, match="reference cnn_model took .* optimizer steps"):
        build_key([sheet(1, 0.9), sheet(2, 0.9, steps=25)], margin=0.1, training=TRAINING)


def test_a_key_without_trainings_or_accuracy_has_no_thresholds():
    """Does an assignment that trains nothing and measures no accuracy (param_counting) get a
    key of its answers and model facts only, with no training section and no thresholds?"""
    bare = {"seed": 1, "wall_s": 1.0, "answers": {"dense_params": 7}, "models": {
        "m": {"layers": [], "counts": {"total": 7}}}, "accuracy": {}, "validation_accuracy": {}}
    key = build_key([bare, {**bare, "seed": 2}], margin=0.1, training=None)
    assert key["answers"] == {"dense_params": 7}
    assert key["thresholds"] == {} and key["not_assessable"] == {} and "training" not in key


def test_a_reference_that_disagrees_with_the_trusted_pipeline_is_refused():
    with pytest.raises(GradingError, match="last block and head"):
        build_key([sheet(1, 0.9, tail_diff=0.2)], margin=0.1)


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
        ctx.key_file.write_text(json.dumps({"fingerprint": ctx.key_fingerprint()}))
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


def test_a_key_that_is_not_a_key_is_not_current(tmp_path):
    """Is a truncated, non-object or fingerprint-less key file treated as stale (so grading
    asks for `course calibrate`) rather than crashing the batch?"""
    from autograder.grading.answer_key import key_is_current

    key = tmp_path / "reduced-stand-in.json"
    assert not key_is_current(key, "abc")  # missing
    for text in ('{"fingerprint": "ab', '["abc"]', '{"profile": "reduced"}', '{"fingerprint": "xyz"}'):
        key.write_text(text)
        assert not key_is_current(key, "abc"), text
    key.write_text('{"fingerprint": "abc"}')
    assert key_is_current(key, "abc")
