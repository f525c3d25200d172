"""The checker loads models with safe_mode=True: a .keras file that needs Python code to load
(a Lambda layer) is refused with a reason, and nothing in it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.grading import messages
from autograder.grading.evidence import MODELS_DIR, Evidence, RubricFail

MARK = "lambda-ran"


@pytest.mark.parametrize("preloaded", [False, True], ids=["on-demand", "preloaded"])
def test_a_lambda_layer_is_refused_and_never_runs(tmp_path, preloaded):
    """Is a model with a Lambda layer refused at load time, naming the model, with its code
    never executed in the checker, also when the preload thread loads it (Keras keeps its safe
    mode per thread)? The refusal reaches every test that asks for the model."""
    import keras

    ran = tmp_path / MARK

    def side_effect(x):  # would leave a file behind if the checker ever ran it
        ran.write_text("ran")
        return x

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Lambda(side_effect)(inputs)))
    ran.unlink(missing_ok=True)  # building the model traced it once, here, in the test
    (tmp_path / MODELS_DIR).mkdir()
    model.save(tmp_path / MODELS_DIR / "cnn_model.keras")
    ran.unlink(missing_ok=True)
    evidence = Evidence(Path(tmp_path))
    if preloaded:
        evidence.preload()
        _wait_until_loaded(evidence, "cnn_model")
    for _ in range(2):
        with pytest.raises(RubricFail) as info:
            evidence.model("cnn_model")
        assert info.value.message.startswith(messages.MODEL_LOAD_FAILED.split("(")[0].format(
            name="cnn_model"))
    assert not ran.exists()


def _wait_until_loaded(evidence: Evidence, name: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with evidence._lock:
            load = evidence._loads.get(name)
        if load is not None and load.done():
            return
        time.sleep(0.05)
    pytest.fail(f"the preload thread never finished {name}")


def test_preloading_loads_each_exported_model_once_largest_first(tmp_path, monkeypatch):
    """The checker preloads the exported models while the first tests run: does it take the
    largest file first, load each model once whichever thread asks first, and give every test
    the same model object? A model that was not exported is still Missing."""
    import threading

    import keras

    from autograder.grading.evidence import Missing

    (tmp_path / MODELS_DIR).mkdir()
    for name, units in [("small_model", 1), ("large_model", 4096)]:
        inputs = keras.Input(shape=(64,))
        keras.Model(inputs, keras.layers.Dense(units)(inputs)).save(
            tmp_path / MODELS_DIR / f"{name}.keras")
    loaded: list[tuple[str, str]] = []
    read = Evidence._read_model

    def counting(self, name):
        loaded.append((name, threading.current_thread().name))
        return read(self, name)

    monkeypatch.setattr(Evidence, "_read_model", counting)
    evidence = Evidence(Path(tmp_path))
    evidence.preload()
    _wait_until_loaded(evidence, "large_model")
    _wait_until_loaded(evidence, "small_model")
    first = evidence.model("large_model")
    assert evidence.model("large_model") is first
    assert evidence.model("small_model").count_params() == 65
    assert loaded == [("large_model", "preload-models"), ("small_model", "preload-models")]
    assert sorted(evidence.loaded_models()) == ["large_model", "small_model"]
    with pytest.raises(Missing):
        evidence.model("tl_model")


@pytest.mark.parametrize("error, student_failure", [(NameError, False), (ValueError, True)])
def test_a_grader_bug_while_a_model_runs_is_a_crashed_check_not_the_students_mistake(
        error, student_failure):
    """A misspelt name in the rubric's own code, raised while a model ran, once reached the
    student as "ft_model should be ...": does a NameError now leave the item a crashed check
    (which staff see), while a model that itself cannot run still fails with the reason the
    student can act on?"""
    import keras
    import numpy as np

    from autograder.rubric.cnn_transfer.shapes import probabilities

    class Breaks(keras.layers.Layer):
        def compute_output_spec(self, x):
            return keras.KerasTensor(x.shape, x.dtype)

        def call(self, x):
            raise error("raised while the model ran")

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, Breaks()(keras.layers.Dense(1, activation="sigmoid")(inputs)))

    class OneModel:  # what probabilities asks of the evidence
        def model(self, name):
            return model

    run = lambda: probabilities(OneModel(), "cnn_model", np.zeros((3, 4), "float32"),  # noqa: E731
                                split=f"grader-bug-{error.__name__}")
    if student_failure:
        with pytest.raises(RubricFail, match=r"^cnn_model could not make predictions"):
            run()
    else:
        with pytest.raises(NameError):
            run()


def test_an_early_load_that_failed_is_not_the_verdict_the_facts_file_is_loaded_again(
        tmp_path, monkeypatch, capsys):
    """A model the grader offered while the export ran is loaded at once; if that load failed
    (the folder was briefly closed to the checker: found on a slow machine, where it cost a
    student the model's items), is the file in the facts folder loaded again when a test asks,
    and judged, with the early failure in the checker's log? A file that fails both times still
    fails with its reason."""
    import keras

    from autograder.grading import evidence as ev

    monkeypatch.setattr(ev, "_early", {})
    monkeypatch.setattr(ev, "_early_queue", ev.queue.SimpleQueue())
    path = tmp_path / MODELS_DIR / "cnn_model.keras"
    ev.load_early("cnn_model", path)  # nothing there yet: this load fails
    with pytest.raises(RubricFail):
        ev._early["cnn_model"][1].result(timeout=120)
    path.parent.mkdir()
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    evidence = Evidence(Path(tmp_path))
    assert evidence.model("cnn_model").count_params() == 8
    assert "the load begun during the export failed" in capsys.readouterr().err

    ev.load_early("tl_model", tmp_path / MODELS_DIR / "tl_model.keras")
    with pytest.raises(RubricFail):
        ev._early["tl_model"][1].result(timeout=120)
    (tmp_path / MODELS_DIR / "tl_model.keras").write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(RubricFail, match="tl_model"):
        Evidence(Path(tmp_path)).model("tl_model")


@pytest.mark.parametrize("config_json", [
    "[1, 2]",
    '{"compile_config": 5}',
    '{"compile_config": {"loss": {"config": [1]}, "optimizer": [1], "metrics": 7}}',
    '{"compile_config": ' + "[" * 100_000 + "]" * 100_000 + "}",
])
def test_compile_settings_of_any_shape_read_as_not_compiled_never_crash(tmp_path, config_json):
    """The models load with compile=False, so a .keras file's compile settings are read as plain
    data that nothing else has vetted: does a config.json of an unexpected shape (a list, a
    number, a loss whose config is a list, nesting past the JSON reader's depth) read as
    settings that match nothing, rather than crashing the compile item for staff to look at?"""
    import zipfile

    from autograder.grading.evidence import compile_facts

    path = tmp_path / "cnn_model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config_json)
    facts = compile_facts(path)
    assert facts["loss"] in (None, "None") and facts["optimizer"] in (None, [1])
    assert facts["metrics"] in ([], ["7"])
