"""Small helpers the cnn_transfer rubric shares (comparison and wording)."""

from __future__ import annotations

from typing import Any

from autograder.grading.evidence import accuracy, fail


def as_shape(value: Any, *, name: str) -> list[int]:
    """A shape answer as a list of ints, with a leading batch ``None`` dropped."""
    if not isinstance(value, list) or not value:
        fail(f"{name} should be a tuple of integers such as (223, 223, 32); got {value!r}.")
    if value[0] is None:
        value = value[1:]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        fail(f"{name} should contain only integers; got {value!r}.")
    return list(value)


def as_int(value: Any, *, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        fail(f"{name} should be a whole number; got {value!r}.")
    return int(value)


def without_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["type"] != "InputLayer"]


def fmt(n: int) -> str:
    return f"{n:,}"


def require_accuracy(evidence: Any, key: dict[str, Any], name: str, inputs: Any, labels: Any,
                     *, how: str = "", expectation: str = "") -> None:
    """Fail unless model ``name`` reaches the calibrated threshold on the hidden split."""
    got = accuracy(evidence.model(name), inputs, labels)
    need = key["thresholds"][name]
    if got < need:
        fail(f"{name} reached {got:.0%} accuracy on the hidden split{how}; at least {need:.0%} "
             f"is expected{expectation}.")
