"""Read what a submission exported, inside the trusted checking process.

The rubric's pytest checks and ``course calibrate`` both call this module; it
never runs student code. Models load with ``safe_mode=True`` (a model that needs
custom Python code fails to load, with a reason); answers and histories are JSON
that the export stage already size-capped and validated.

This module does not decide points (see :mod:`autograder.grading.score`) and
does not start kernels (see :mod:`autograder.grading.execute`).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from autograder.grading import messages
from autograder.keras_import import import_keras

# Files the export stage writes into a facts folder.
ANSWERS_FILE = "answers.json"
HISTORIES_FILE = "histories.json"
MODELS_DIR = "models"


GRADER_BUGS = (NameError,)
"""Exceptions no submission can cause: a misspelt name in the rubric's or the grader's own code.
Where a check turns a model's errors into the student's failure (``except Exception``), these
are raised on instead, so the item shows as a crashed check for staff to fix, never as a
mistake of the student's."""


class RubricFail(AssertionError):
    """A rubric item failed; ``message`` is shown to the student as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Missing(Exception):
    """A name the item needs was not exported (undefined, or the run stopped first)."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(name)
        self.name = name
        self.detail = detail


class NotAssessable(Exception):
    """The item cannot tell right from wrong in this grading mode (for example an accuracy
    threshold that the reference solution itself cannot clear with stand-in weights). The
    item is left out of the maximum score and labelled; it never gives points."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def fail(message: str) -> None:
    raise RubricFail(message)


@dataclass
class Evidence:
    """One submission's exported facts, loaded lazily (a model :func:`keep_early` kept for this
    facts folder is the load begun while the export ran)."""

    facts_dir: Path
    _loads: dict[str, Future] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _early_loads: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name, (path, load) in _early.items():
            if path == self.facts_dir / MODELS_DIR / f"{name}.keras":
                self._loads.setdefault(name, load)
                self._early_loads.add(name)

    @cached_property
    def _answers_file(self) -> dict[str, Any]:
        """answers.json, read once: the answers, the reasons for names without one, and each
        history's batches per epoch."""
        return _read_json(self.facts_dir / ANSWERS_FILE)

    @cached_property
    def answers(self) -> dict[str, Any]:
        return self._answers_file.get("answers", {})

    @cached_property
    def answer_errors(self) -> dict[str, str]:
        return self._answers_file.get("errors", {})

    @cached_property
    def histories(self) -> dict[str, dict[str, list[float]]]:
        return _read_json(self.facts_dir / HISTORIES_FILE)

    def steps_per_epoch(self, name: str) -> int | None:
        """Batches per epoch of the fit that returned history ``name``, when it is a Keras
        History (None for a dict, which records no fit)."""
        return self._answers_file.get("steps_per_epoch", {}).get(name)

    def answer(self, name: str) -> Any:
        if name in self.answers:
            return self.answers[name]
        raise Missing(name, self.answer_errors.get(name, ""))

    def history(self, name: str) -> dict[str, list[float]]:
        if name in self.histories:
            return self.histories[name]
        raise Missing(name, self.answer_errors.get(name, ""))

    def model_file(self, name: str) -> Path:
        path = self.facts_dir / MODELS_DIR / f"{name}.keras"
        if not path.is_file():
            # The export stage records why a defined name was not kept (a refused or oversized
            # file); say that rather than "not defined".
            raise Missing(name, self.answer_errors.get(name, ""))
        return path

    def loaded_models(self) -> dict[str, Any]:
        with self._lock:
            loads = dict(self._loads)
        return {name: load.result() for name, load in loads.items()
                if load.done() and load.exception() is None}

    def model(self, name: str) -> Any:
        """The named model, loaded with ``safe_mode=True``; cached per process (a model
        :meth:`preload` is loading is waited for). Raises :class:`Missing` for a model that was
        not exported and :class:`RubricFail` for one that does not load.

        A load begun while the export ran is a head start, never a verdict: when it failed,
        the file in the facts folder is loaded again here, and only that load's failure
        counts (its own reason is in the checker's log)."""
        load = self._load(name)
        if name in self._early_loads and load.exception() is not None:
            with self._lock:
                if self._loads.get(name) is load:
                    del self._loads[name]
                    self._early_loads.discard(name)
                    print(f"{name}: the load begun during the export failed "
                          f"({_short(load.exception())}); loading it from the facts folder",
                          file=sys.stderr, flush=True)
            load = self._load(name)
        return load.result()

    def preload(self) -> None:
        """Start loading every exported model on a background thread, the largest first, while
        the rubric's first tests run on the smaller ones (issue 12: loading ResNet50-sized
        models was a second of the check stage each). A test that asks for a model before its
        turn loads it itself; nothing is loaded twice. Keras keeps its loading state per thread,
        so each load is in safe mode wherever it runs."""
        folder = self.facts_dir / MODELS_DIR
        try:
            files = sorted((f for f in folder.iterdir() if f.suffix == ".keras" and f.is_file()),
                           key=lambda f: (-f.stat().st_size, f.name))
        except OSError:
            return
        names = [f.stem for f in files]
        threading.Thread(target=lambda: [self._load(n) for n in names], name="preload-models",
                         daemon=True).start()

    def _load(self, name: str) -> Future:
        """The load of ``name``: started by the first thread that asks, run in that thread."""
        with self._lock:
            load = self._loads.get(name)
            if load is not None:
                return load
            load = self._loads[name] = Future()
        try:
            load.set_result(self._read_model(name))
        except BaseException as exc:  # kept for every test that asks, in its own thread
            load.set_exception(exc)
        return load

    def _read_model(self, name: str) -> Any:
        return read_model(name, self.model_file(name))


def read_model(name: str, path: Path) -> Any:
    """Model ``name`` from its ``.keras`` file, in safe mode; :class:`RubricFail` when the file
    does not load."""
    keras = import_keras()

    try:
        # compile=False: the optimizer is never needed (its step counter and the compile
        # settings are read from the file as plain data instead).
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except GRADER_BUGS:
        raise
    except Exception as exc:  # a hostile or broken file: explain, never crash the batch
        raise RubricFail(messages.MODEL_LOAD_FAILED.format(
            name=name, error=_short(exc))) from None


_early: dict[str, tuple[Path, Future]] = {}
"""Models whose loads began before the facts arrived: name -> (file, load)."""
_early_queue: queue.SimpleQueue = queue.SimpleQueue()


def load_early(name: str, path: Path) -> None:
    """Start loading model ``name`` from ``path`` (a file the grader says is final) on a thread
    of its own, in the order offered, while the checker still waits for the facts. Only a
    checker process does this, and only the grader's pipe tells it to."""
    if name in _early:
        return
    load: Future = Future()
    _early[name] = (path, load)
    if len(_early) == 1:
        threading.Thread(target=_load_queued, name="early-models", daemon=True).start()
    _early_queue.put((name, path, load))


def _load_queued() -> None:
    while True:
        name, path, load = _early_queue.get()
        if load.set_running_or_notify_cancel():
            try:
                load.set_result(read_model(name, path))
            except BaseException as exc:  # kept for the test that asks, as Evidence does
                load.set_exception(exc)


def keep_early(facts_dir: Path, names: list[Any]) -> list[str]:
    """Keep the early loads of ``names`` whose file is in ``facts_dir`` (what the grader says
    is still the submission's model there); forget the rest. Returns the names kept."""
    kept = {n for n in names if isinstance(n, str)}
    for name, (path, load) in list(_early.items()):
        if name not in kept or path != facts_dir / MODELS_DIR / f"{name}.keras":
            load.cancel()  # not begun yet: never begun
            del _early[name]
    return sorted(_early)


def load_answer_rules(kit_root: Path, assignment: str) -> Any:
    """The assignment's released ``course_helpers`` module (else its source copy): its
    ``*_answer_problem`` functions are the one definition of a well-formed answer, shared by
    the students' public ``check()`` and the grader. It holds no solution (it is shipped to
    students) and runs no student code. A rubric caches it (``functools.lru_cache``)."""
    import importlib.util
    import sys

    for folder in ("release", "source"):
        path = kit_root / folder / assignment / "course_helpers.py"
        try:
            path.stat()
        except OSError:
            continue
        name = f"_{assignment}_answer_rules"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    raise RuntimeError(f"course_helpers.py of {assignment} (the shared answer rules) was not found")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------
# Facts about a loaded model, as plain data (the summary as data, not text).


def layer_rows(model: Any) -> list[dict[str, Any]]:
    """One row per layer of ``model``: name, type, output shape, parameter count, trainable."""
    return rows_of(model.layers)


def rows_of(layers: Any) -> list[dict[str, Any]]:
    """:func:`layer_rows` of these layers."""
    rows = []
    for layer in layers:
        try:
            shape = _shape_list(layer.output.shape)
        except Exception:  # layers without a single output tensor
            shape = None
        rows.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": shape,
            "params": int(layer.count_params()),
            "trainable": bool(layer.trainable),
            "config": _small_config(layer),
            **_inner_trainable(layer),
        })
    return rows


def _inner_trainable(layer: Any) -> dict[str, Any]:
    """For a nested model (ResNet50 inside ft_model): how many of its layers are trainable,
    and whether they are its last ones. A frozen outer layer freezes them all."""
    inner = getattr(layer, "layers", None)
    if not inner:
        return {}
    open_at = [i for i, sub in enumerate(inner) if layer.trainable and sub.trainable]
    last = open_at == list(range(len(inner) - len(open_at), len(inner)))
    return {"inner_trainable": {"open": len(open_at), "total": len(inner), "last": last}}


def _shape_list(shape: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in tuple(shape)]


def _small_config(layer: Any) -> dict[str, Any]:
    """The few configuration values a rubric may look at."""
    config = layer.get_config()
    keep = ("filters", "kernel_size", "strides", "padding", "activation", "units", "rate",
            "pool_size", "scale", "offset", "max_value", "negative_slope", "threshold")
    return {k: _jsonable(config[k]) for k in keep if k in config}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def weight_counts(model: Any) -> dict[str, int]:
    """Total, trainable and non-trainable parameters, counted from the weights themselves."""
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return {"total": trainable + frozen, "trainable": trainable, "non_trainable": frozen}


def compile_facts(model_file: Path) -> dict[str, Any]:
    """Loss, optimizer and metrics as saved in a ``.keras`` file's config.json (plain JSON:
    nothing is deserialised, so nothing in the file can run)."""
    import zipfile

    try:
        with zipfile.ZipFile(model_file) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > 16 * 2**20:
                raise ValueError("config.json is implausibly large")
            saved = json.loads(archive.read(info))
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile):
        saved = {}
    # The model loads with compile=False, so nothing has vetted this part of the file: any
    # shape that is not the one Keras writes reads as "not compiled".
    config = saved.get("compile_config") if isinstance(saved, dict) else None
    config = config if isinstance(config, dict) else {}
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict):
        optimizer = optimizer.get("class_name")
    loss = config.get("loss")
    if isinstance(loss, dict):
        inner = loss.get("config")
        loss = loss.get("class_name") or (inner.get("name") if isinstance(inner, dict) else None)
    metrics = config.get("metrics") or []
    flat = []
    for m in metrics if isinstance(metrics, list) else [metrics]:
        flat.append(m.get("class_name") if isinstance(m, dict) else m)
    return {"optimizer": optimizer, "loss": loss, "metrics": [str(m) for m in flat]}


MAX_WEIGHTS_MEMBER_BYTES = 2 * 2**30
FT_AGREEMENT_TOLERANCE = 1e-3
"""Largest difference in predicted probability allowed between the fine-tuned model on images
and its own last block and head on the trusted pipeline's activations (same weights; only
floating-point order differs)."""


def optimizer_iterations(model_file: Path) -> int | None:
    """How many optimizer steps the saved model took: the optimizer's iteration counter, read as
    plain data from the ``.keras`` archive's ``model.weights.h5`` (group ``optimizer/vars``,
    the one integer scalar Keras stores first). Nothing in the file is deserialised or run.
    ``None`` when the file holds no optimizer state (a model that was never compiled and fit)."""
    import zipfile

    import h5py
    import numpy as np

    try:
        with zipfile.ZipFile(model_file) as archive:
            info = archive.getinfo("model.weights.h5")
            if info.file_size > MAX_WEIGHTS_MEMBER_BYTES:
                return None
            with archive.open(info) as member, h5py.File(member, "r") as weights:
                group = weights.get("optimizer/vars")
                if not isinstance(group, h5py.Group):
                    return None
                for key in sorted(group.keys(), key=lambda k: (len(k), k)):
                    item = group[key]
                    if isinstance(item, h5py.Dataset) and item.shape == () \
                            and np.issubdtype(item.dtype, np.integer):
                        return int(item[()])
                return None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def layer_signature(layer: Any) -> dict[str, Any]:
    """A layer's type, weight shapes and a hash of its weights (in order): enough to tell
    whether two layers at the same position hold the same weights, whatever their names."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    shapes = []
    for w in layer.get_weights():
        a = np.ascontiguousarray(np.asarray(w, dtype="float32"))
        shapes.append(list(a.shape))
        digest.update(repr(a.shape).encode())
        digest.update(a.tobytes())
    return {"type": type(layer).__name__, "shapes": shapes, "sha256": digest.hexdigest()}


def finetune_tail(model: Any, *, open_layers: int) -> Any:
    """A new model from the backbone's input to the last ``open_layers`` layers (ResNet50's last
    residual block) and the layers after the backbone, built from the submission's own layer
    objects (so it shares their weights): ``features before the block -> probability``.

    The block is wired as ResNet50 wires an identity block: a chain of layers whose ``Add`` takes
    the block's input as the shortcut. Layers are taken by position, never by name; a model whose
    layers do not fit this shape raises ``ValueError``."""
    keras = import_keras()

    backbone = find_backbone(model)
    if backbone is None:
        raise ValueError("no nested backbone")
    block = backbone.layers[-open_layers:]
    before = backbone.layers[-open_layers - 1]
    outer = list(model.layers)
    head = outer[outer.index(backbone) + 1:]
    features = keras.Input(shape=tuple(before.output.shape[1:]))
    x = features
    for layer in block:
        x = layer([features, x]) if type(layer).__name__ == "Add" else layer(x)
    for layer in head:
        x = layer(x)
    return keras.Model(features, x)


def trainable_pattern(model: Any) -> list[bool]:
    """Which layers train, in order; input layers hold no weights, so they count as frozen
    (Keras does not save their flag, and a reloaded one always says trainable)."""
    return [bool(layer.trainable) and type(layer).__name__ != "InputLayer" for layer in model.layers]


def find_backbone(model: Any) -> Any | None:
    """The nested ResNet50 model inside ``model``, if any (the largest nested model)."""
    keras = import_keras()

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return max(nested, key=lambda m: len(m.layers), default=None)


# ---------------------------------------------------------------------------
# Data and accuracy, on splits the student's kernel never saw.


def load_image_folder(folder: Path, *, classes: tuple[str, ...], image_size_px: int):
    """Images and labels from ``folder/<class>/*``, read and resized exactly as the
    students' notebooks do (``keras.utils.image_dataset_from_directory``)."""
    keras = import_keras()
    import numpy as np

    dataset = keras.utils.image_dataset_from_directory(
        folder, labels="inferred", label_mode="binary", class_names=list(classes),
        image_size=(image_size_px, image_size_px), batch_size=64, shuffle=False, verbose=False,
    )
    images, labels = [], []
    for x, y in dataset:
        images.append(np.asarray(x, dtype="float32"))
        labels.append(np.asarray(y, dtype="float32").reshape(-1))
    return np.concatenate(images), np.concatenate(labels)


def model_outputs(model: Any, inputs: Any, *, batch_size: int = 32) -> Any:
    """``model``'s outputs on ``inputs``, flattened to float64, in direct calls of
    ``batch_size`` inputs (for the hundred-odd inputs of a split, ``predict`` spends more time
    tracing its function than computing). The calibration and the rubric both use it."""
    import numpy as np

    parts = [np.asarray(model(inputs[i:i + batch_size], training=False), dtype="float64")
             for i in range(0, len(inputs), batch_size)]
    return np.concatenate(parts).reshape(-1) if parts else np.zeros(0)


def accuracy(model: Any, inputs: Any, labels: Any) -> float:
    """Binary accuracy of a sigmoid-output model at threshold 0.5."""
    import numpy as np

    probs = model_outputs(model, inputs)
    return float(np.mean((probs > 0.5).astype("float32") == labels))


WAIT_ENV = "COURSE_CHECK_WAIT"
"""Set for a checker started before the submission ran, to the descriptor of the grader's pipe:
it warms up, then reads JSON lines there: ``{"model": name, "file": path}`` for each model file
the export finished while it still ran (loaded at once, :func:`load_early`), then
``{"facts_dir": ..., "early": [names]}`` (see :class:`autograder.grading.check.StartedRubric`)."""


DONE_ENV = "COURSE_CHECK_DONE"
"""Set for a checker started early, to a descriptor it closes once its report is written: the
grader scores from the report then, while pytest still prints its summary and the process
exits (a third of a second of every grade, issue 12)."""


@dataclass(frozen=True)
class CheckInputs:
    """What the trusted checking process is given, through environment variables."""

    facts_dir: Path
    key_file: Path | None
    grading_dir: Path
    validation_dir: Path
    weights_file: Path | None
    classes: tuple[str, ...]
    image_size_px: int
    epochs: dict[str, int]
    report_file: Path
    embeddings_dir: Path | None = None
    """Precomputed trusted embeddings of the hidden splits (``grading.npy``, ``validation.npy``)."""

    ENV = "COURSE_CHECK_INPUTS"

    def to_env(self) -> dict[str, str]:
        data = {
            "facts_dir": str(self.facts_dir),
            "key_file": str(self.key_file) if self.key_file else None,
            "grading_dir": str(self.grading_dir),
            "validation_dir": str(self.validation_dir),
            "weights_file": str(self.weights_file) if self.weights_file else None,
            "classes": list(self.classes),
            "image_size_px": self.image_size_px,
            "epochs": self.epochs,
            "report_file": str(self.report_file),
            "embeddings_dir": str(self.embeddings_dir) if self.embeddings_dir else None,
        }
        return {self.ENV: json.dumps(data)}

    @classmethod
    def from_env(cls) -> CheckInputs:
        data = json.loads(os.environ[cls.ENV])
        return cls(
            facts_dir=Path(data["facts_dir"]),
            key_file=Path(data["key_file"]) if data["key_file"] else None,
            grading_dir=Path(data["grading_dir"]),
            validation_dir=Path(data["validation_dir"]),
            weights_file=Path(data["weights_file"]) if data["weights_file"] else None,
            classes=tuple(data["classes"]),
            image_size_px=int(data["image_size_px"]),
            epochs={k: int(v) for k, v in data["epochs"].items()},
            report_file=Path(data["report_file"]),
            embeddings_dir=Path(data["embeddings_dir"]) if data.get("embeddings_dir") else None,
        )
