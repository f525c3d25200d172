"""Small helpers the param_counting rubric shares: well-formed answers, fresh model copies."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from autograder.grading.evidence import fail, load_answer_rules

ASSIGNMENT = "param_counting"
COURSE_ROOT = Path(__file__).resolve().parents[3]


@functools.lru_cache(maxsize=1)
def answer_rules() -> Any:
    """The released ``course_helpers``' answer rules (:func:`evidence.load_answer_rules`)."""
    return load_answer_rules(COURSE_ROOT, ASSIGNMENT)


def _sentence(problem: str) -> str:
    return problem[0].upper() + problem[1:] + "."


def as_int(value: Any, *, name: str) -> int:
    problem = answer_rules().int_answer_problem(name, value)
    if problem:
        fail(_sentence(problem))
    return int(value)


def as_shape(value: Any, *, name: str, length: int) -> list[int]:
    problem = answer_rules().shape_answer_problem(name, value, length)
    if problem:
        fail(_sentence(problem))
    return [int(v) for v in value]


def answers(evidence: Any, key: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The names whose (well-formed) answer differs from the key's, in order."""
    return [n for n in names if as_int(evidence.answer(n), name=n) != key["answers"][n]]


def fresh_model(evidence: Any, name: str) -> Any:
    """A copy of model ``name`` of its own (loaded again, ``safe_mode=True``), for a check that
    freezes or unfreezes layers: the evidence's cached copy stays as it was handed in."""
    import keras

    evidence.model(name)  # a model that does not load fails here, with its reason
    return keras.models.load_model(evidence.model_file(name), safe_mode=True, compile=False)


def nested_base(model: Any) -> Any | None:
    """The largest model nested inside ``model`` (the base of a transfer-learning model)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return max(nested, key=lambda m: len(m.layers), default=None)


def fmt(n: int) -> str:
    return f"{n:,}"
