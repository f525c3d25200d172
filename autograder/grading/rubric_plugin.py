"""The pytest plugin that runs an assignment's rubric in the trusted checking process.

Loaded with ``-p autograder.grading.rubric_plugin`` by :mod:`autograder.grading.check`.
It provides the fixtures rubric tests use (the submission's evidence, the answer
key, the hidden grading split, a trusted ResNet50) and writes one JSON record per
test. A record carries a student-facing message only when the test raised
:class:`~autograder.grading.evidence.RubricFail`; any other failure is reported
by exception type alone, so no hidden check's code or output reaches feedback.

A rubric test declares with markers what scoring needs to know about it beyond its
outcome (registered here, and the run is ``--strict-markers``, so a misspelt marker name
stops the run instead of being ignored):

``@pytest.mark.visibility("after_due_date")``
    when Gradescope shows the item's result (its per-test ``visibility``; default
    ``visible``). Rejected: a naming convention on the test (``test_hidden_...``), which
    would change the item's name, and hence its ``grade_id`` and points.
``@pytest.mark.profile_dependent(epochs="cnn", pass_mark=True)``
    the item's result depends on the profile's image size and that training's epochs
    (``pass_mark``: its pass mark was calibrated for the profile); the score says so on
    the item when grading ran at a reduced profile.

A marker with a value that is not one of these is a rubric error: nothing is run, and
:func:`autograder.grading.check.run_rubric` raises it naming the file and the test.
"""

from __future__ import annotations

import gc
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autograder.course.settings import TRAININGS
from autograder.errors import GradingError
from autograder.grading import messages
from autograder.grading.evidence import (
    DONE_ENV,
    WAIT_ENV,
    CheckInputs,
    Evidence,
    Missing,
    NotAssessable,
    RubricFail,
    keep_early,
    layer_rows,
    load_early,
    load_image_folder,
)
from autograder.keras_import import import_keras

_records: dict[str, dict[str, Any]] = {}
_evidence: list[Evidence] = []
_declared: dict[str, dict[str, Any]] = {}
_rubric_errors: list[dict[str, Any]] = []

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
"""Gradescope's values for a test's ``visibility``."""


@pytest.fixture(scope="session")
def inputs() -> CheckInputs:
    return CheckInputs.from_env()


@pytest.fixture(scope="session")
def evidence(inputs: CheckInputs) -> Evidence:
    ev = Evidence(inputs.facts_dir)
    ev.preload()
    _evidence.append(ev)
    return ev


@pytest.fixture(scope="session")
def key(inputs: CheckInputs) -> dict[str, Any]:
    return _trusted("key", inputs)


@pytest.fixture(scope="session")
def grading_set(inputs: CheckInputs):
    return _trusted("grading_set", inputs)


@pytest.fixture(scope="session")
def validation_set(inputs: CheckInputs):
    return _trusted("validation_set", inputs)


@pytest.fixture(scope="session")
def pretrained(request: pytest.FixtureRequest, inputs: CheckInputs) -> dict[str, list]:
    """Layer name -> the pretrained (or stand-in) weights, from the batch's cache when there."""
    from autograder.grading.embeddings import PRETRAINED_FILE
    from autograder.grading.trusted import pretrained_weights

    if inputs.embeddings_dir is not None and (inputs.embeddings_dir / PRETRAINED_FILE).is_file():
        return pretrained_weights(inputs.embeddings_dir)
    backbone = request.getfixturevalue("trusted_backbone")
    return {layer.name: layer.get_weights() for layer in backbone.layers}


@pytest.fixture(scope="session")
def trusted_backbone(inputs: CheckInputs):
    """ResNet50 without its top, with the verified (or stand-in) weights file."""
    from autograder.grading.trusted import build_backbone

    return build_backbone(inputs.weights_file, image_size_px=inputs.image_size_px)


@pytest.fixture(scope="session")
def trusted_layers(request: pytest.FixtureRequest, inputs: CheckInputs) -> list[dict[str, Any]]:
    """The trusted backbone's layers in order: type, weight shapes, hash of the weights."""
    from autograder.grading.trusted import backbone_layers

    if _cached_file(inputs, "backbone_layers") is not None:
        return _trusted("trusted_layers", inputs)
    return backbone_layers(request.getfixturevalue("trusted_backbone"))


_computed: dict[str, Any] = {}


def _embeddings(request: pytest.FixtureRequest, inputs: CheckInputs, split: str, images_fixture: str,
                *, mid: bool = False):
    """A split's trusted embeddings (or, with ``mid``, activations before the last block)."""
    from autograder.grading.trusted import embed_both

    name = f"{split}_mid" if mid else split
    if _cached_file(inputs, name) is not None:
        return _trusted(name, inputs)
    if split not in _computed:
        images = request.getfixturevalue(images_fixture)[0]
        _computed[split] = embed_both(request.getfixturevalue("trusted_backbone"), images)
    return _computed[split][0 if mid else 1]


@pytest.fixture(scope="session")
def grading_embeddings(request, inputs):
    return _embeddings(request, inputs, "grading", "grading_set")


@pytest.fixture(scope="session")
def validation_embeddings(request, inputs):
    return _embeddings(request, inputs, "validation", "validation_set")


@pytest.fixture(scope="session")
def grading_mid(request, inputs):
    """Trusted activations before ResNet50's last block, for the hidden grading split."""
    return _embeddings(request, inputs, "grading", "grading_set", mid=True)


@pytest.fixture(scope="session")
def validation_mid(request, inputs):
    return _embeddings(request, inputs, "validation", "validation_set", mid=True)


# ---------------------------------------------------------------------------
# Trusted inputs (the grader's own files, never the submission's), read once per process.
# A checker started before the notebook ran reads those its tests need while it waits.

_loaded: dict[str, Any] = {}

_timing: list[str] = []
"""The warm-up's line for grader.log (staff only), printed last: the grader keeps the log's tail."""


def _cached_file(inputs: CheckInputs, name: str) -> Path | None:
    """A file of the batch's embeddings cache (``embeddings.FILES`` names), if there."""
    from autograder.grading.embeddings import FILES as EMBEDDING_FILES

    if inputs.embeddings_dir is None:
        return None
    path = inputs.embeddings_dir / EMBEDDING_FILES[name]
    return path if path.is_file() else None


def _read_key(inputs: CheckInputs) -> dict[str, Any]:
    if inputs.key_file is None or not inputs.key_file.is_file():
        raise RuntimeError("no answer key; run `course calibrate` first")
    return json.loads(inputs.key_file.read_text())


def _read_cached(name: str):
    def read(inputs: CheckInputs):
        import numpy as np

        path = _cached_file(inputs, name)
        if path is None:
            raise FileNotFoundError(name)
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return np.load(path, allow_pickle=False)
    return read


def _image_split(attr: str):
    def read(inputs: CheckInputs):
        return load_image_folder(getattr(inputs, attr), classes=inputs.classes,
                                 image_size_px=inputs.image_size_px)
    return read


_TRUSTED = {
    "key": _read_key,
    "grading_set": _image_split("grading_dir"),
    "validation_set": _image_split("validation_dir"),
    "trusted_layers": _read_cached("backbone_layers"),
    "grading": _read_cached("grading"),
    "validation": _read_cached("validation"),
    "grading_mid": _read_cached("grading_mid"),
    "validation_mid": _read_cached("validation_mid"),
}
"""Trusted values by name: the answer key, the hidden splits' images and the embeddings cache."""
_WARM_FOR = {"key": "key", "grading_set": "grading_set", "validation_set": "validation_set",
             "trusted_layers": "trusted_layers", "grading_embeddings": "grading",
             "validation_embeddings": "validation", "grading_mid": "grading_mid",
             "validation_mid": "validation_mid"}
"""Fixture name -> the trusted value it returns (when read from files)."""


def _trusted(name: str, inputs: CheckInputs) -> Any:
    if name not in _loaded:
        _loaded[name] = _TRUSTED[name](inputs)
    return _loaded[name]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """For a checker started early (:data:`WAIT_ENV` names the grader's pipe): warm up, then
    wait for the facts folder."""
    fd = os.environ.get(WAIT_ENV)
    if not fd:
        import_keras()
        return
    started = time.monotonic()
    _warm_up(session.items)
    warm = time.monotonic()
    with os.fdopen(int(fd), "rb") as pipe:
        message = _next_message(pipe)
        while isinstance(message, dict) and "model" in message and "facts_dir" not in message:
            # A model file the export finished while it still ran: load it now (issue 12).
            name, file = message.get("model"), message.get("file")
            if isinstance(name, str) and isinstance(file, str) and Path(file).is_absolute():
                load_early(name, Path(file))
            message = _next_message(pipe)
    # For grader.log (staff only): how long the warm-up took and how long the facts took after it.
    _timing.append(f"checker warmed up in {warm - started:.1f} s, then waited "
                   f"{time.monotonic() - warm:.1f} s for the facts")
    try:
        facts_dir = Path(message["facts_dir"])
    except (KeyError, TypeError):
        pytest.exit("the grader sent no facts folder: nothing to judge", returncode=3)
    if not facts_dir.is_absolute():
        pytest.exit(f"the grader sent a relative facts folder {facts_dir}", returncode=3)
    early = message.get("early")
    kept = keep_early(facts_dir, early if isinstance(early, list) else [])
    if kept:
        _timing.append("loaded while the export ran: " + ", ".join(kept))
    os.environ.update(replace(CheckInputs.from_env(), facts_dir=facts_dir).to_env())


def _next_message(pipe: Any) -> Any:
    """The grader's next JSON line (None at the end of the pipe or for a line that is not JSON)."""
    try:
        return json.loads(pipe.readline(4096))
    except ValueError:
        return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _timing:
        terminalreporter.write_line(line)


def _warm_up(items: list[pytest.Item]) -> None:
    """Import Keras (and TensorFlow) and read the trusted values the collected tests ask for.
    A value that cannot be read is left for its fixture, which meets the same error in the test
    and reports it there."""
    import_keras()  # seconds of imports, paid while the notebook runs
    # TensorFlow's and Keras' module objects live as long as the checker: out of the collector's
    # reach, each collection (hundreds while three models load, and pytest's own at the end)
    # stops walking them. Measured on a ResNet50 file: its load 1.33-1.41 -> 1.18-1.20 CPU-s,
    # a full collection 0.12 -> 0.00 s (issue 12).
    gc.freeze()

    inputs = CheckInputs.from_env()
    wanted = {name for item in items for name in getattr(item, "fixturenames", ())}
    for fixture in sorted(wanted & set(_WARM_FOR)):
        try:
            _trusted(_WARM_FOR[fixture], inputs)
        except Exception:
            _loaded.pop(_WARM_FOR[fixture], None)


BACKBONE_FEATURES = frozenset({"grading_embeddings", "validation_embeddings", "grading_mid",
                               "validation_mid"})
"""Fixtures that give ResNet50's features: an item using one judges a model on them, so its
result means something else with stand-in weights (the score says so on the item)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "visibility(value): when Gradescope shows this item's result: "
        + ", ".join(VISIBILITIES) + " (default visible)")
    config.addinivalue_line(
        "markers", "profile_dependent(epochs, pass_mark=False): the result depends on the "
        "profile's image size and the epochs of this training (" + ", ".join(TRAININGS) + "); "
        "pass_mark=True when its pass mark was calibrated for the profile")


def declared(item: pytest.Item) -> dict[str, Any]:
    """What ``item``'s markers declare, as record fields (none when it declares nothing).

    Raises :class:`GradingError` naming the rubric file and test for a value that is not
    one of the allowed ones."""
    where = f"{item.name} in {item.path}"
    out: dict[str, Any] = {}
    mark = item.get_closest_marker("visibility")
    if mark is not None:
        value = mark.args[0] if len(mark.args) == 1 and not mark.kwargs else (mark.args, mark.kwargs)
        if value not in VISIBILITIES:
            raise GradingError(f"rubric test {where}: unknown visibility {value!r}",
                               hint="write @pytest.mark.visibility(...) with one of: "
                               + ", ".join(VISIBILITIES))
        if value != "visible":
            out["visibility"] = value
    mark = item.get_closest_marker("profile_dependent")
    if mark is not None:
        epochs = mark.kwargs.get("epochs", mark.args[0] if mark.args else None)
        pass_mark = mark.kwargs.get("pass_mark", False)
        if epochs not in TRAININGS or not isinstance(pass_mark, bool) or len(mark.args) > 1 \
                or set(mark.kwargs) - {"epochs", "pass_mark"}:
            raise GradingError(f"rubric test {where}: bad profile_dependent marker "
                               f"(args {mark.args!r}, keywords {mark.kwargs!r})",
                               hint="write @pytest.mark.profile_dependent(epochs=..., "
                               "pass_mark=True|False) with epochs one of: " + ", ".join(TRAININGS))
        out["profile_dependent"] = {"epochs": epochs, "pass_mark": pass_mark}
    return out


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    for item in items:
        try:
            _declared[_item(item.nodeid)] = declared(item)
        except GradingError as exc:
            _rubric_errors.append({"message": exc.message, "hint": exc.hint})
    if _rubric_errors:  # a misdeclared rubric grades nobody: run nothing, report the errors
        config.hook.pytest_deselected(items=list(items))
        items[:] = []


def _item(nodeid: str) -> str:
    name = nodeid.split("::")[-1]
    return name[len("test_"):] if name.startswith("test_") else name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        record = _record(call)
        if BACKBONE_FEATURES & set(getattr(item, "fixturenames", ())):
            record["uses_backbone_features"] = True
        record.update(_declared.get(_item(item.nodeid), {}))
        _records[_item(item.nodeid)] = record


def _record(call: pytest.CallInfo) -> dict[str, Any]:
    if call.excinfo is None:
        return {"outcome": "passed", "message": messages.PASSED}
    exc = call.excinfo.value
    if isinstance(exc, RubricFail):
        return {"outcome": "failed", "message": exc.message}
    if isinstance(exc, Missing):
        return {"outcome": "missing", "name": exc.name, "detail": exc.detail}
    if isinstance(exc, NotAssessable):
        return {"outcome": "not_assessable", "message": exc.message}
    if isinstance(exc, AssertionError):
        # A bare assert in a rubric: say it failed, never what it compared.
        return {"outcome": "failed", "message": "This item's check did not pass."}
    return {"outcome": "error",
            "message": messages.CHECK_CRASHED.format(error=type(exc).__name__)}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        report_file = CheckInputs.from_env().report_file
    except KeyError:
        return
    summaries = {}
    for ev in _evidence:
        for name, model in ev.loaded_models().items():
            try:
                summaries[name] = layer_rows(model)
            except Exception:  # a summary is a courtesy; never fail the report for it
                pass
    tmp = Path(str(report_file) + ".tmp")
    report = {"items": _records, "summaries": summaries}
    if _rubric_errors:
        report["rubric_errors"] = _rubric_errors
    tmp.write_text(json.dumps(report, indent=1, sort_keys=True))
    tmp.replace(report_file)
    done = os.environ.get(DONE_ENV)
    if done:  # the grader may score now; the log's summary follows
        try:
            os.close(int(done))
        except (OSError, ValueError):
            pass
    _leave_quickly(int(exitstatus))


def _leave_quickly(status: int) -> None:
    """Once the report is written, end the checker without the interpreter's teardown of
    TensorFlow (about 0.4 s of every grade): an exit handler registered after TensorFlow's own
    runs first, once pytest has printed its summary and given up the terminal, and leaves with
    pytest's status."""
    import atexit
    import sys

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)

    atexit.register(leave)
