"""Small helpers the cnn_transfer rubric shares (comparison, predictions and wording)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from autograder.grading.evidence import (
    GRADER_BUGS,
    NotAssessable,
    compile_facts,
    fail,
    load_answer_rules,
    model_outputs,
)

ASSIGNMENT = "cnn_transfer"
KIT_ROOT = Path(__file__).resolve().parents[3]


@functools.lru_cache(maxsize=1)
def answer_rules() -> Any:
    """The released ``course_helpers``' answer rules (:func:`evidence.load_answer_rules`)."""
    return load_answer_rules(KIT_ROOT, ASSIGNMENT)


def _student(problem: str) -> str:
    """A public-check sentence ("your x should ...") as the start of a feedback sentence."""
    return problem[0].upper() + problem[1:] + "."


def as_shape(value: Any, *, name: str, length: int) -> list[int]:
    """A shape answer as a list of ints, if the shared rule accepts it."""
    problem = answer_rules().shape_answer_problem(name, value, length)
    if problem:
        fail(_student(problem))
    return [int(v) for v in value]


def as_int(value: Any, *, name: str) -> int:
    problem = answer_rules().int_answer_problem(name, value)
    if problem:
        fail(_student(problem))
    return int(value)


def as_choice(value: Any, *, name: str) -> str:
    rules = answer_rules()
    problem = rules.choice_answer_problem(name, value, rules.MODEL_CHOICES)
    if problem:
        fail(_student(problem) + f" (got {value!r})")
    return value


def without_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["type"] != "InputLayer"]


def with_activations_folded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Layer rows with each activation written as a layer of its own (``Activation("relu")``,
    a plain ``ReLU()``) folded into the layer before it, when that layer has no activation of
    its own: ``Dense(64)`` then ``Activation("relu")`` is ``Dense(64, activation="relu")``, the
    same function with the same weights. Anything else is kept as it is."""
    out: list[dict[str, Any]] = []
    for row in rows:
        activation = _standalone_activation(row)
        if activation is not None and out and out[-1]["config"].get("activation") == "linear":
            out[-1] = {**out[-1], "config": {**out[-1]["config"], "activation": activation}}
            continue
        out.append(row)
    return out


HEAD = "Flatten → Dense(256, activation='relu') → Dropout(0.5) → Dense(1, activation='sigmoid')"
"""The head of Questions 4b and 5a, as the notebook prescribes it (for messages)."""


def head_problem(name: str, rows: list[dict[str, Any]], want: list[dict[str, Any]]) -> str | None:
    """What differs between a head's layer rows and the key's, or None: the layer types in
    order, each layer's activation (an activation written as a layer of its own is folded
    first) and each Dropout's rate, however it was written (0.5, 1 / 2, a NumPy float)."""
    got = with_activations_folded(without_inputs(rows))
    want = with_activations_folded(without_inputs(want))
    if [r["type"] for r in got] != [r["type"] for r in want]:
        return (f"{name} should be " + " → ".join(r["type"] for r in want) + "; yours is "
                + (" → ".join(r["type"] for r in got) or "empty") + f". The head is {HEAD}.")
    for g, w in zip(got, want):
        if g["config"].get("activation") != w["config"].get("activation"):
            return (f"{name}'s {g['type']} layer {g['name']} uses activation "
                    f"'{g['config'].get('activation')}'; the head is {HEAD}.")
        if "rate" in w["config"] and not _same_number(g["config"].get("rate"), w["config"]["rate"]):
            return (f"{name}'s {g['type']} layer {g['name']} drops {g['config'].get('rate')} of "
                    f"its inputs; the head is {HEAD}.")
    return None


def _same_number(got: Any, want: float) -> bool:
    try:
        return abs(float(got) - float(want)) < 1e-6
    except (TypeError, ValueError):
        return False


def _standalone_activation(row: dict[str, Any]) -> str | None:
    """The activation a layer applies when it is only an activation, else None."""
    config = row.get("config") or {}
    if row["type"] == "Activation" and isinstance(config.get("activation"), str):
        return config["activation"]
    if row["type"] == "ReLU" and config.get("max_value") is None \
            and not config.get("negative_slope") and not config.get("threshold"):
        return "relu"
    return None


def compile_problems(model_file: Path, want: dict[str, Any]) -> list[str]:
    """How a model's saved compile settings differ from the key's: the loss (any spelling Keras
    accepts: binary_crossentropy, BinaryCrossentropy()), the optimizer's kind and an accuracy
    metric."""
    got = compile_facts(model_file)
    problems = []
    if str(got["loss"]).lower().replace("_", "") != str(want["loss"]).lower().replace("_", ""):
        problems.append(f"loss should be {want['loss']} (got {got['loss']})")
    if got["optimizer"] != want["optimizer"]:
        problems.append(f"optimizer should be {want['optimizer']} (got {got['optimizer']})")
    if not {"accuracy", "acc", "BinaryAccuracy"} & set(got["metrics"]):
        problems.append(f"metrics should include accuracy (got {got['metrics']})")
    return problems


def fmt(n: int) -> str:
    return f"{n:,}"


def require_history(evidence: Any, name: str, epochs: int, *, fit_hint: str) -> dict[str, list[float]]:
    """``name`` must be what one fit of ``epochs`` epochs with validation data returned."""
    import math

    history = evidence.history(name)
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if metric not in history:
            fail(f"{name} has no {metric!r}: train with validation data and metrics=['accuracy'], "
                 f"and keep what {fit_hint} returns.")
    lengths = {len(history[m]) for m in ("loss", "accuracy", "val_loss", "val_accuracy")}
    if lengths != {epochs}:
        fail(f"{name} covers {sorted(lengths)} epochs; this profile trains for {epochs}: keep the "
             f"History that {fit_hint} returned.")
    values = [v for m in ("loss", "accuracy", "val_loss", "val_accuracy") for v in history[m]]
    if not all(math.isfinite(v) for v in values) or \
            not all(0.0 <= v <= 1.0 for m in ("accuracy", "val_accuracy") for v in history[m]):
        fail(f"{name} holds values that no training produces (not finite, or accuracies outside "
             f"0..1): keep what {fit_hint} returned.")
    return history


def require_history_describes(history: dict[str, list[float]], name: str, model: str, *,
                              correct_count: int, total: int) -> None:
    """The last ``val_accuracy`` in history ``name`` is what ``model``, as handed in, scores on
    the validation images (``correct_count`` of ``total``, recomputed by the grader): Keras
    measures it with the final weights after the last epoch, so an honest history matches to
    the image; one image of slack for floating-point order. A history typed in, or a model
    changed after its fit, does not match; neither does a step counter set by hand (the
    saved optimizer's ``iterations`` is a variable the kernel can assign)."""
    recorded = history["val_accuracy"][-1]
    if abs(recorded * total - correct_count) > 1.0 + 1e-6:
        fail(f"{name}'s last val_accuracy is {recorded:.3f}, but the {model} handed in scores "
             f"{correct_count}/{total} = {correct_count / total:.3f} on the validation images, "
             f"so that history does not describe this model: keep the History that its one fit "
             f"returned, and do not change the model after training it.")


def fit_accuracy_hits(evidence: Any, name: str, inputs: Any, labels: Any) -> int | None:
    """How many of ``inputs`` model ``name`` gets right, reading its outputs as Keras'
    ``accuracy`` metric did during fit (one output: above 0.5; two: the larger, for a softmax
    head and sparse labels). None for a model with other outputs or inputs, or one that cannot
    run on them: the architecture item says what is wrong with it."""
    import numpy as np

    model = evidence.model(name)
    out_shape = tuple(model.outputs[0].shape[1:]) if getattr(model, "outputs", None) else None
    in_shape = tuple(int(d) for d in model.inputs[0].shape[1:]) if model.inputs else ()
    if out_shape not in ((), (1,), (2,)) or in_shape != tuple(inputs.shape[1:]):
        return None
    try:
        outputs = np.concatenate([np.asarray(model(inputs[i:i + 32], training=False))
                                  for i in range(0, len(inputs), 32)])
    except GRADER_BUGS:
        raise
    except Exception:  # a model that loads but cannot run on its inputs
        return None
    predicted = outputs.argmax(axis=-1) if out_shape == (2,) else outputs.reshape(-1) > 0.5
    return int(np.sum(predicted.astype("float32") == labels.reshape(-1)))


# ---------------------------------------------------------------------------
# Predictions of a loaded model, with a specific explanation when the model cannot give one
# probability per input (a loadable but wrong model never ends as "could not be checked").

_predictions: dict[tuple[str, str], Any] = {}


def probabilities(evidence: Any, name: str, inputs: Any, *, split: str, what: str = "images",
                  rows: Any = None, batch_size: int = 32) -> Any:
    """One probability per input from model ``name`` (cached per split), or a clear failure.
    With ``rows`` (indices into ``inputs``), only those inputs; ``batch_size`` inputs per
    call of the model."""
    import numpy as np

    cache_key = (name, split if rows is None else f"{split}:{','.join(map(str, rows))}")
    if cache_key in _predictions:
        return _predictions[cache_key]
    model = evidence.model(name)
    out_shape = tuple(model.outputs[0].shape[1:]) if getattr(model, "outputs", None) else None
    if out_shape not in ((1,), ()):
        fail(f"{name} gives {tuple(out_shape or ())} outputs per input; a binary classifier here "
             f"ends in Dense(1, activation='sigmoid'): one probability per input, of the class "
             f"'shoes' (two softmax units are not this assignment's head).")
    in_shape = tuple(int(d) for d in model.inputs[0].shape[1:]) if model.inputs else ()
    if in_shape != tuple(inputs.shape[1:]):
        fail(f"{name} takes inputs of shape {in_shape}, but its {what} have shape "
             f"{tuple(inputs.shape[1:])}.")
    chosen = inputs if rows is None else inputs[np.asarray(rows)]
    try:
        probs = model_outputs(model, chosen, batch_size=batch_size)
    except GRADER_BUGS:
        raise
    except Exception as exc:  # a model that loads but cannot run on its inputs
        fail(f"{name} could not make predictions on {what} of shape {tuple(inputs.shape[1:])} "
             f"({type(exc).__name__}); check its input shape and layers.")
    require_probabilities(probs, name, len(chosen))
    _predictions[cache_key] = probs
    return probs


def require_probabilities(probs: Any, name: str, count: int) -> None:
    """``probs`` must be ``count`` finite probabilities (a sigmoid's outputs)."""
    import numpy as np

    if probs.shape[0] != count or not np.all(np.isfinite(probs)):
        fail(f"{name} should give one finite probability per input.")
    if np.any(probs < 0) or np.any(probs > 1):
        fail(f"{name}'s outputs are not probabilities (some are outside 0..1): end the model "
             f"with Dense(1, activation='sigmoid').")


def spread(count: int, most: int) -> list[int]:
    """At most ``most`` indices spread evenly over ``0..count-1`` (both ends included)."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def correct(probs: Any, labels: Any) -> int:
    """How many inputs the probabilities classify right at 0.5 (counted, so ties are exact)."""
    import numpy as np

    return int(np.sum((probs > 0.5).astype("float32") == labels.reshape(-1)))


def require_accuracy(probs: Any, labels: Any, key: dict[str, Any], name: str,
                     *, how: str = "", expectation: str = "") -> None:
    """Fail unless model ``name`` reaches the calibrated threshold on the hidden split.

    A model whose output does not depend on its input fails in every mode. Where the key says
    this accuracy item cannot tell a trained model from a constant one (the reference itself
    does not clear a threshold above the majority-class rate), raise ``NotAssessable``: the
    item is then left out of the maximum, never given."""
    import numpy as np

    if float(np.ptp(probs)) < 1e-6:
        fail(f"{name} gives the same output ({float(probs[0]):.3f}) for every input{how}: it has "
             f"not learned anything from the images. Check that it is trained and that its last "
             f"layer is connected to its input.")
    got = correct(probs, labels) / len(labels)
    need = key["thresholds"][name]
    if name in key.get("not_assessable", {}):
        raise NotAssessable(
            f"{name}'s accuracy cannot be assessed in this grading mode: even the reference "
            f"solution does not reach a level that a constant answer could not (this item "
            f"counts neither for nor against you).")
    if got < need:
        fail(f"{name} reached {got:.0%} accuracy on the hidden split{how}; at least {need:.0%} "
             f"is expected{expectation}.")
