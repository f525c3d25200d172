"""Plain dataclasses that cross stage boundaries (execute -> export -> check -> score -> report).

Nothing here holds a live object from the student's kernel: only numbers,
strings and paths to files the grader copied out and validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Cell statuses, in the order of how bad they are.
CELL_OK = "ok"
CELL_ERROR = "error"  # raised an exception; grading went on
CELL_TIMEOUT = "timeout"  # hit limits.cell_timeout_s, was interrupted; grading went on
CELL_KILLED = "killed"  # the kernel died, ran out of memory or the budget ran out here
CELL_NOT_RUN = "not-run"  # never reached (after a kill), or deleted from the submission


@dataclass(frozen=True)
class CellRun:
    """What happened to one code cell of the submission."""

    index: int
    """Position among the notebook's cells (0-based)."""
    grade_id: str | None
    """nbgrader's ``grade_id`` from the *release* notebook, when the cell matches one."""
    status: str
    """One of the ``CELL_*`` constants."""
    runtime_s: float
    """Wall time the cell ran, 0 when it did not run."""
    limit: str | None = None
    """The limit it hit: ``cell_timeout_s``, ``notebook_budget_s``, ``memory_mb``,
    ``max_processes``, ``output_bytes``, ``disk_mb`` or ``kernel_died``."""
    message: str = ""
    """A short, student-facing note (exception name and message, never a traceback of ours)."""


@dataclass(frozen=True)
class ExecutionResult:
    """Stage 1 + 2 output: how the run went and what was exported (all validated)."""

    student: str
    cells: tuple[CellRun, ...]
    kernel_status: str
    """``finished``, ``budget`` (whole-notebook budget ran out), ``died``, ``oom``,
    ``killed`` (ignored an interrupt after a cell timeout, so the grader stopped it) or
    ``refused``."""
    wall_s: float
    answers: dict[str, Any] = field(default_factory=dict)
    """Exported answer values (JSON types only); a name absent here was not defined."""
    answer_errors: dict[str, str] = field(default_factory=dict)
    """Names that were defined but could not be exported, with the reason."""
    models: dict[str, Path] = field(default_factory=dict)
    """Paths of ``.keras`` files copied out of the sandbox into the grader's own folder."""
    histories: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    defined_in: dict[str, int] = field(default_factory=dict)
    """For each exported name, the index of the cell that last assigned it (when known)."""
    facts_dir: Path | None = None
    """The grader-owned folder the validated exports were written to, in the layout the
    checker reads (answers, histories, models); None when nothing was run."""
    replayed_before: int | None = None
    """Set when the kernel was lost at this cell index and the cells before it were run
    again in a fresh kernel: the exports come from that replay."""
    sandboxed: bool = True
    weights_mode: str = "imagenet"
    """``imagenet`` or ``stand-in``; feedback labels stand-in numbers."""
    notes: tuple[str, ...] = ()
    """Grader-side notes for the student (e.g. output cut at the byte limit)."""


@dataclass(frozen=True)
class ItemResult:
    """One rubric item after checking and scoring."""

    name: str
    """The rubric item, e.g. ``q2_cnn_architecture`` (also the nbgrader grade_id)."""
    score: float
    max_score: float
    passed: bool
    message: str
    """Plain-language reason shown to the student; never a hidden check's code or output."""
    visibility: str = "visible"
    """Gradescope's per-test visibility (``visible``, ``hidden``, ``after_due_date``,
    ``after_published``), as the rubric test declares it with ``@pytest.mark.visibility``."""
    assessable: bool = True
    """False when the answer key says this item cannot be judged in this grading mode (say,
    an accuracy bar the reference itself cannot clear with stand-in weights): it scores 0 of
    0 and is labelled, never free points."""


@dataclass(frozen=True)
class GradeResult:
    """Everything the report stage needs for one submission."""

    student: str
    assignment_id: str
    score: float
    max_score: float
    items: tuple[ItemResult, ...]
    execution: ExecutionResult
    model_summaries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per model, one row per layer: name, type, output shape, params, trainable (from the
    loaded model in the trusted process)."""
    grader_error: str = ""
    """Set when the grader itself failed on this submission (exception type and message, for
    staff only): the result is a placeholder that a re-run replaces."""
