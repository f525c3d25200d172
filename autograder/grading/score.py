"""Score: turn the checker's records and the execution facts into points and reasons.

Pure functions over plain data, testable without TensorFlow or a kernel. Partial
credit always: each rubric item scores on its own; an item that needed a name the
run never produced is explained by the cell that was supposed to produce it (or the
cell where the run stopped), with the limit it hit.
"""

from __future__ import annotations

import re
from typing import Any

from autograder.facts import CELL_NOT_RUN, CELL_OK, CellRun, ExecutionResult, ItemResult
from autograder.grading import messages


def score_items(
    records: dict[str, dict[str, Any]],
    *,
    points: dict[str, float],
    execution: ExecutionResult,
    cell_sources: list[str],
    limit_values: dict[str, float],
) -> tuple[ItemResult, ...]:
    """One :class:`ItemResult` per rubric item in ``points`` (config order)."""
    items = []
    for name, max_score in points.items():
        record = records.get(name)
        if record is None:
            message = messages.CHECK_DID_NOT_RUN
            items.append(ItemResult(name, 0.0, float(max_score), False, message))
            continue
        outcome = record.get("outcome")
        if outcome == "passed":
            items.append(ItemResult(name, float(max_score), float(max_score), True, messages.PASSED))
        elif outcome == "missing":
            reason = explain_missing(record.get("name", "?"), record.get("detail", ""),
                                     execution=execution, cell_sources=cell_sources,
                                     limit_values=limit_values)
            items.append(ItemResult(name, 0.0, float(max_score), False, reason))
        else:
            items.append(ItemResult(name, 0.0, float(max_score), False,
                                    str(record.get("message") or messages.CHECK_DID_NOT_RUN)))
    return tuple(items)


def explain_missing(
    name: str,
    detail: str,
    *,
    execution: ExecutionResult,
    cell_sources: list[str],
    limit_values: dict[str, float],
) -> str:
    """Why ``name`` was not available, naming the cell and the limit where one applies."""
    if detail:
        return messages.NOT_EXPORTABLE.format(name=name, detail=detail)
    by_index = {c.index: c for c in execution.cells}
    defining = [i for i, src in enumerate(cell_sources) if assigns(src, name)]
    for index in reversed(defining):
        cell = by_index.get(index)
        if cell is not None and cell.status not in (CELL_OK, CELL_NOT_RUN):
            return messages.STOPPED_IN_DEFINING_CELL.format(
                name=name, cell=_cell_label(cell), what=describe(cell, limit_values))
    stopped = next((c for c in execution.cells if c.status in ("killed", "timeout")
                    and (not defining or c.index < max(defining))), None)
    if stopped is not None:
        return messages.STOPPED_BEFORE.format(
            name=name, cell=_cell_label(stopped), what=describe(stopped, limit_values))
    return messages.NOT_DEFINED.format(name=name)


def describe(cell: CellRun, limit_values: dict[str, float]) -> str:
    """Completes 'cell N ...' in plain words."""
    if cell.limit and cell.limit in messages.LIMIT_WHAT:
        return messages.LIMIT_WHAT[cell.limit].format(value=limit_values.get(cell.limit, 0))
    template = messages.STATUS_WHAT.get(cell.status, "did not finish")
    return template.format(message=cell.message or "see the cell's output")


def _cell_label(cell: CellRun) -> str:
    label = f"{cell.index + 1}"
    return f"{label} ({cell.grade_id})" if cell.grade_id else label


def assigns(source: str, name: str) -> bool:
    """Does this cell's source assign ``name`` at the top level (``name = ...``, ``a, name = ...``)?"""
    pattern = rf"^(?:[A-Za-z_][\w\s,()\[\]]*,\s*)?\(?\s*{re.escape(name)}\s*(?::[^=\n]+)?(?:,[^=\n]*)?\)?\s*=(?!=)"
    return re.search(pattern, source, re.MULTILINE) is not None


def total(items: tuple[ItemResult, ...]) -> tuple[float, float]:
    return sum(i.score for i in items), sum(i.max_score for i in items)
