"""Score: turn the checker's records and the execution facts into points and reasons.

Pure functions over plain data, testable without TensorFlow or a kernel. Partial
credit always: each rubric item scores on its own; an item that needed a name the
run never produced is explained by the cell that was supposed to produce it (or the
cell where the run stopped), with the limit it hit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

from autograder.course.settings import Limits, Profile
from autograder.facts import CELL_ERROR, CELL_NOT_RUN, CELL_OK, CellRun, ExecutionResult, GradeResult, ItemResult
from autograder.grading import messages
from autograder.grading.submission import CellNames


_EPOCH_FIELDS = tuple(f.name for f in fields(Profile) if f.name.endswith("_epochs"))


@dataclass(frozen=True)
class ReducedProfile:
    """Grading ran at a profile smaller than the course's full one: the items whose result
    depends on the profile say so, with both profiles' numbers."""

    name: str
    """The profile's name in ``course_config.py`` (``reduced``)."""
    profile: Profile
    full: Profile
    """The course's largest profile (by image size, then epochs): what "full size" means."""


def reduced_profile(profiles: dict[str, Profile], name: str) -> ReducedProfile | None:
    """``name``'s profile when it has smaller images or fewer epochs of some training than the
    course's largest profile; None when grading runs at full size."""
    def size(p: Profile) -> tuple[int, int]:
        return p.image_size_px, sum(getattr(p, f) for f in _EPOCH_FIELDS)

    run, full = profiles[name], max(profiles.values(), key=size)
    smaller = run.image_size_px < full.image_size_px or any(
        getattr(run, f) < getattr(full, f) for f in _EPOCH_FIELDS)
    return ReducedProfile(name, run, full) if smaller else None


def score_items(
    records: dict[str, dict[str, Any]],
    *,
    points: dict[str, float],
    execution: ExecutionResult,
    cell_sources: list[str] | CellNames,
    limits: Limits,
    reduced: ReducedProfile | None = None,
) -> tuple[ItemResult, ...]:
    """One :class:`ItemResult` per rubric item in ``points`` (config order), with the
    visibility its rubric test declares; with stand-in weights or a ``reduced`` profile, an
    item judged (passed or failed) on what they change says what its result means."""
    items = []
    assigned = cell_sources if isinstance(cell_sources, CellNames) else CellNames(cell_sources)
    for name, max_score in points.items():
        record = records.get(name)
        if record is None:
            message = messages.CHECK_DID_NOT_RUN
            items.append(ItemResult(name, 0.0, float(max_score), False, message))
            continue
        outcome = record.get("outcome")
        if outcome == "passed":
            item = ItemResult(name, float(max_score), float(max_score), True, messages.PASSED)
        elif outcome == "not_assessable":
            why = str(record.get("message") or "")
            item = ItemResult(name, 0.0, 0.0, False, messages.NOT_ASSESSABLE.format(why=why),
                              assessable=False)
        elif outcome == "missing":
            reason = explain_missing(record.get("name", "?"), record.get("detail", ""),
                                     execution=execution, cell_sources=assigned,
                                     limits=limits)
            item = ItemResult(name, 0.0, float(max_score), False, reason)
        else:
            item = ItemResult(name, 0.0, float(max_score), False,
                              str(record.get("message") or messages.CHECK_DID_NOT_RUN))
        notes = _notes(record, execution=execution, reduced=reduced) \
            if outcome in ("passed", "failed") else []
        items.append(replace(item, message=" ".join([item.message, *notes]),
                             visibility=str(record.get("visibility") or "visible")))
    return tuple(items)


def _notes(record: dict[str, Any], *, execution: ExecutionResult,
           reduced: ReducedProfile | None) -> list[str]:
    """What this judged item's result does and does not mean in this grading mode."""
    notes = []
    if execution.weights_mode == "stand-in" and record.get("uses_backbone_features"):
        notes.append(messages.STAND_IN_ITEM)
    use = record.get("profile_dependent")
    if reduced is not None and isinstance(use, dict):
        field = f"{use.get('epochs')}_epochs"
        template = messages.REDUCED_PROFILE_PASS_MARK if use.get("pass_mark") \
            else messages.REDUCED_PROFILE_TRAINING
        notes.append(template.format(
            profile=reduced.name, size_px=reduced.profile.image_size_px,
            epochs=getattr(reduced.profile, field), full_size_px=reduced.full.image_size_px,
            full_epochs=getattr(reduced.full, field)))
    return notes


def explain_missing(
    name: str,
    detail: str,
    *,
    execution: ExecutionResult,
    cell_sources: list[str] | CellNames,
    limits: Limits,
) -> str:
    """Why ``name`` was not available, naming the cell and the limit where one applies."""
    if detail:
        return messages.NOT_EXPORTABLE.format(name=name, detail=detail)
    by_index = {c.index: c for c in execution.cells}
    cells = cell_sources if isinstance(cell_sources, CellNames) else CellNames(cell_sources)
    defining = cells.defining(name)
    for index in reversed(defining):
        cell = by_index.get(index)
        if cell is not None and cell.status not in (CELL_OK, CELL_NOT_RUN):
            return messages.STOPPED_IN_DEFINING_CELL.format(
                name=name, cell=_cell_label(cell), what=describe(cell, limits))
    stopped = next((c for c in execution.cells if c.status in ("killed", "timeout")
                    and (not defining or c.index < max(defining))), None)
    if stopped is not None:
        return messages.STOPPED_BEFORE.format(
            name=name, cell=_cell_label(stopped), what=describe(stopped, limits))
    if not defining:  # a question left as released: its cell mentions the name and raises
        mentions = re.compile(rf"\b{re.escape(name)}\b")
        for cell in execution.cells:
            if cell.status == CELL_ERROR and cell.message.startswith("NotImplementedError") \
                    and cell.index < len(cells.sources) and mentions.search(cells.sources[cell.index]):
                return messages.PLACEHOLDER_LEFT.format(name=name, cell=_cell_label(cell))
    return messages.NOT_DEFINED.format(name=name)


def describe(cell: CellRun, limits: Limits) -> str:
    """Completes 'cell N ...' in plain words."""
    if cell.limit and cell.limit in messages.LIMIT_WHAT:
        return messages.LIMIT_WHAT[cell.limit].format(value=getattr(limits, cell.limit, 0))
    template = messages.STATUS_WHAT.get(cell.status, "did not finish")
    return template.format(message=cell.message or "see the cell's output")


def _cell_label(cell: CellRun) -> str:
    label = f"{cell.index + 1}"
    return f"{label} ({cell.grade_id})" if cell.grade_id else label


def total(items: tuple[ItemResult, ...]) -> tuple[float, float]:
    return sum(i.score for i in items), sum(i.max_score for i in items)


def redact(text: str, pairs: list[tuple[str, str]]) -> str:
    """``text`` with each grader-machine path replaced by a neutral word (longest first), and
    any character a terminal or a page could interpret shown as an escape."""
    for path, word in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
        if path and path != "/":
            text = text.replace(path, word)
    return printable(text)


def printable(text: str, *, keep: str = "\n\t") -> str:
    """Control characters (terminal escapes, NUL, bidi overrides) and lone surrogates as
    ``\\xNN`` / ``\\uNNNN``; everything else unchanged."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in keep or (ch.isprintable() and not 0xD800 <= code <= 0xDFFF):
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def redact_result(result: GradeResult, pairs: list[tuple[str, str]]) -> GradeResult:
    """Every student-facing string of ``result`` passed through :func:`redact`."""
    ex = result.execution
    execution = replace(
        ex, notes=tuple(redact(n, pairs) for n in ex.notes),
        cells=tuple(replace(c, message=redact(c.message, pairs)) for c in ex.cells))
    items = tuple(replace(i, message=redact(i.message, pairs)) for i in result.items)
    return replace(result, items=items, execution=execution)
