"""The param_counting rubric, judged in the real confined checker on exported facts of the
reference solution and of variants of it, without a kernel: the reference's own cells run in
this process (hidden tests stripped), their answers and models are written as the export stage
writes them, and the key is built by the calibration code (fact sheet + build_key)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from autograder.course.config import load_course
from autograder.course.samples import reference_submission
from autograder.grading.calibrate import build_key
from autograder.grading.check import run_rubric
from autograder.grading.evidence import ANSWERS_FILE, MODELS_DIR, CheckInputs

pytestmark = pytest.mark.slow  # runs the reference notebook's cells (TensorFlow, seconds)

REPO = Path(__file__).resolve().parents[2]
AID = "param_counting"


def _run_reference(workdir: Path) -> dict:
    """The reference solution's namespace, run as a student's notebook would run."""
    course = load_course(REPO)
    shutil.copy(course.release_dir(AID) / "course_helpers.py", workdir)
    shutil.copy(course.release_dir(AID) / "settings.json", workdir)
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("course_helpers", workdir / "course_helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["course_helpers"] = module
    try:
        ns: dict = {}
        for cell in reference_submission(course.source_dir(AID) / f"{AID}.ipynb").cells:
            if cell.cell_type == "code":
                exec(compile(cell.source.replace(".summary()", ".count_params()"), "cell",
                             "exec"), ns)
        return ns
    finally:
        sys.modules.pop("course_helpers", None)


def _write_facts(folder: Path, ns: dict, *, answer_names, model_names) -> Path:
    facts = folder / "facts"
    (facts / MODELS_DIR).mkdir(parents=True)
    answers = {n: list(ns[n]) if isinstance(ns[n], tuple) else int(ns[n]) for n in answer_names}
    (facts / ANSWERS_FILE).write_text(json.dumps({"answers": answers, "errors": {}}))
    for name in model_names:
        ns[name].save(facts / MODELS_DIR / f"{name}.keras")
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return facts


def _inputs(folder: Path, facts: Path, key_file: Path | None) -> CheckInputs:
    return CheckInputs(facts_dir=facts, key_file=key_file, grading_dir=folder / "no-images",
                       validation_dir=folder / "no-images", weights_file=None,
                       classes=("a", "b"), image_size_px=28, epochs={},
                       report_file=folder / "report.json")


@pytest.fixture(scope="module")
def judged():
    """Checker records for the reference and three variants, against a key from the reference."""
    from autograder.grading.factsheet import measure

    course = load_course(REPO)
    a = course.config.assignment(AID)
    base = Path(tempfile.mkdtemp(prefix="course-test-pc-"))
    base.chmod(0o755)
    try:
        ns = _run_reference(base)
        names = {"answer_names": a.answer_names, "model_names": a.model_names}
        ref = base / "reference"
        ref.mkdir()
        facts = _write_facts(ref, ns, **names)
        sheet = measure(_inputs(ref, facts, None), answer_names=list(a.answer_names),
                        model_names=list(a.model_names), accuracy_inputs={}, backbone=False)
        key = build_key([{**sheet, "seed": 1, "wall_s": 1.0}], margin=a.accuracy_margin)
        key_file = base / "key.json"
        key_file.write_text(json.dumps(key))
        key_file.chmod(0o644)
        records = {"reference": run_rubric(_inputs(ref, facts, key_file),
                                           rubric_dir=course.rubric_dir(AID))[0]["items"]}

        def variant(name: str, change, undo=lambda v: None) -> None:
            folder = base / name
            folder.mkdir()
            changed = dict(ns)  # the models are shared: a change to one is undone after
            change(changed)
            try:
                facts = _write_facts(folder, changed, **names)
            finally:
                undo(changed)
            records[name] = run_rubric(_inputs(folder, facts, key_file),
                                       rubric_dir=course.rubric_dir(AID))[0]["items"]

        def bn_trainable(model_name: str, layer: str, value: bool):
            return lambda v: setattr(v[model_name].get_layer(layer), "trainable", value)

        variant("bn_counted_as_trainable", lambda v: v.update(bn_trainable_params=64))
        variant("bn_in_training_mode", bn_trainable("base", "base_bn", True),
                bn_trainable("base", "base_bn", False))
        variant("counting_model_left_frozen", bn_trainable("counting_model", "bn", False),
                bn_trainable("counting_model", "bn", True))
        # right, but not as the reference wrote it: the same layers as a Sequential model
        variant("counting_model_as_sequential", lambda v: v.update(counting_model=_as_sequential()))
        return a, key, records
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as_sequential():
    """Question 3a's layers, in its order and with its names, built with keras.Sequential
    instead of the functional API (the question asks for the functional API; the model is
    the same, and the checker judges the model)."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=(28, 28, 3)), layers.Conv2D(16, (3, 3), name="conv"),
        layers.BatchNormalization(name="bn"), layers.ReLU(), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dense(10, activation="softmax", name="dense")], name="counting_seq")


def _failed(items: dict) -> set[str]:
    return {name for name, r in items.items() if r["outcome"] != "passed"}


def test_the_reference_passes_every_item_and_the_key_holds_its_counts(judged):
    a, key, records = judged
    assert set(records["reference"]) == set(a.points)
    assert _failed(records["reference"]) == set()
    assert key["answers"]["bn_non_trainable_params"] == 32
    bn = [r for r in key["models"]["counting_model"]["layers"] if r["type"] == "BatchNormalization"]
    assert [r["params"] for r in bn] == [key["answers"]["bn_params"]]


@pytest.mark.parametrize("variant, broken", [
    ("bn_counted_as_trainable", {"q2_batchnorm"}),
    ("bn_in_training_mode", {"q4_bn_inference", "q4_finetune_counts"}),
    ("counting_model_left_frozen", {"q3_frozen_counts", "q3_counting_model"}),
    ("counting_model_as_sequential", set()),
])
def test_each_mistake_costs_exactly_its_items(judged, variant, broken):
    """Does the checker, reading only the answers and .keras files, fail the items the change
    breaks (each with a reason for the student) and pass every other?"""
    _, _, records = judged
    items = records[variant]
    assert _failed(items) == broken
    assert all(items[i]["outcome"] == "failed" and items[i]["message"] for i in broken)


def test_the_inference_mode_check_reads_behaviour_not_text(judged):
    _, _, records = judged
    message = records["bn_in_training_mode"]["q4_bn_inference"]["message"]
    assert "training mode" in message and "trainable = False" in message
