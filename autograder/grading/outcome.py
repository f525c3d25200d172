"""What one executed cell's outcome was: a pure decision from what was observed.

:func:`classify` turns plain observations of one cell (did the kernel die, was the interrupt
ignored, did the cell time out, did the cgroup count an OOM kill or a refused fork, the
error the reply carried, was the output cut) into the cell's status, the limit that
decided it and the student's message — and, when the cell ends the run, how. It starts no
kernel and reads no cgroup, so every branch is tested directly (tests/grading/test_outcome.py);
:mod:`autograder.grading.execute` gathers the observations and applies the outcome.

Precedence, first match wins: an ignored interrupt (budget, else cell timeout) > OOM >
kernel death > a timeout answered in time (budget, else cell timeout) > an error reply
(refused processes > OOM > disk) > ok (refused processes). Output notes (cut, dropped) only
fill in a limit or message no earlier rule set.
"""

from __future__ import annotations

from dataclasses import dataclass

from autograder.course.settings import Limits
from autograder.facts import CELL_ERROR, CELL_KILLED, CELL_OK, CELL_TIMEOUT
from autograder.grading import messages

MESSAGE_CHARS = 300
"""Characters of an error's value kept; a cell's message is cut at twice this."""


@dataclass(frozen=True)
class CellSignals:
    """What was observed while one cell ran."""

    died: bool = False
    """The kernel died (nbclient raised DeadKernelError)."""
    ignored: bool = False
    """The kernel did not answer the timeout's interrupt within the grace period."""
    timed_out: bool = False
    """The cell's timeout fired (answered in time unless ``ignored``)."""
    budget_bound: bool = False
    """The cell's timeout was cut short by what was left of the notebook budget."""
    oom: bool = False
    """The cgroup counted an OOM kill during the cell."""
    pids_hit: bool = False
    """The cgroup refused a process or thread during the cell."""
    error: str | None = None
    """``ename: evalue`` of an error reply."""
    output_cut: bool = False
    """Output past the per-cell byte cap was cut."""
    dropped: bool = False
    """libzmq dropped an oversized message (raw: a dead kernel's disconnect counts too)."""
    died_how: str = ""
    """How the kernel ended (exit code or signal), for a death."""


@dataclass(frozen=True)
class CellOutcome:
    status: str
    limit: str | None
    message: str
    kernel_status: str | None = None
    """The run's kernel status when this cell ended it (``killed``, ``budget``, ...)."""
    stops: bool = False
    """No later cell runs."""
    lost: bool = False
    """The kernel is gone (killed or dead): nothing can be exported from it."""
    notes: tuple[str, ...] = ()
    """Notes for the whole result (output cut or dropped)."""


def classify(signals: CellSignals, limits: Limits, *, cell: int) -> CellOutcome:
    """The outcome of cell index ``cell`` (0-based, as in the output notes)."""
    s = signals
    lost = s.died or s.ignored
    if lost:
        status, limit, text, kernel_status = _lost(s, limits)
    elif s.timed_out and s.budget_bound:
        status, limit = CELL_KILLED, "notebook_budget_s"
        text = messages.CELL_BUDGET.format(limit_s=limits.notebook_budget_s)
        kernel_status = "budget"
    elif s.timed_out:
        status, limit = CELL_TIMEOUT, "cell_timeout_s"
        text = messages.CELL_TIMEOUT.format(limit_s=limits.cell_timeout_s)
        kernel_status = None
    elif s.error is not None:
        status, limit, text = _error(s.error, s, limits)
        kernel_status = None
    else:
        status, limit, text, kernel_status = CELL_OK, None, "", None
        if s.pids_hit:
            limit, text = "max_processes", messages.CELL_PIDS.format(limit=limits.max_processes)
    notes = []
    if s.output_cut:
        notes.append(messages.OUTPUT_CUT.format(cell=cell, limit=limits.output_bytes))
    # A dead kernel's sockets disconnect too, which is no oversized message (it once told
    # a killed kernel's student their output was dropped).
    if s.dropped and not lost:
        notes.append(messages.OUTPUT_DROPPED.format(cell=cell, limit=limits.output_bytes + 2**20))
    if notes:
        limit = limit or "output_bytes"
        text = text or notes[0]
    return CellOutcome(status, limit, text[:MESSAGE_CHARS * 2], kernel_status,
                       stops=lost or kernel_status == "budget", lost=lost, notes=tuple(notes))


def _lost(s: CellSignals, limits: Limits) -> tuple[str, str, str, str]:
    """The kernel is gone: which limit (or crash) took it."""
    if s.ignored and s.budget_bound:
        limit, text = "notebook_budget_s", messages.CELL_BUDGET.format(
            limit_s=limits.notebook_budget_s)
        kernel_status = "budget"
    elif s.ignored:
        limit = "cell_timeout_s"
        text = messages.CELL_TIMEOUT_KILLED.format(limit_s=limits.cell_timeout_s)
        kernel_status = "killed"
    elif s.oom:
        limit, text = "memory_mb", messages.CELL_OOM.format(limit_mb=limits.memory_mb)
        kernel_status = "oom"
    else:
        limit = "max_processes" if s.pids_hit else "kernel_died"
        text = messages.CELL_DIED.format(how=s.died_how)
        kernel_status = "died"
    return CELL_KILLED, limit, text, kernel_status


def _error(error: str, s: CellSignals, limits: Limits) -> tuple[str, str | None, str]:
    """An error reply, and the limit behind it when one is visible."""
    if s.pids_hit:
        return CELL_ERROR, "max_processes", \
            f"{error} — " + messages.CELL_PIDS.format(limit=limits.max_processes)
    if s.oom:
        return CELL_ERROR, "memory_mb", error
    if "No space left on device" in error or "File too large" in error:
        return CELL_ERROR, "disk_mb", \
            f"{error} — " + messages.CELL_DISK.format(limit_mb=limits.disk_mb)
    return CELL_ERROR, None, error
