"""classify(): one cell's status, limit and message from plain observations (no kernel)."""

from __future__ import annotations

import pytest

from autograder.course.settings import Limits
from autograder.facts import CELL_ERROR, CELL_KILLED, CELL_OK, CELL_TIMEOUT
from autograder.grading import messages
from autograder.grading.outcome import MESSAGE_CHARS, CellSignals, classify

LIMITS = Limits(cell_timeout_s=3, notebook_budget_s=20, memory_mb=256, max_processes=64,
                output_bytes=1000, disk_mb=64)


def outcome(**signals):
    return classify(CellSignals(**signals), LIMITS, cell=4)


def test_a_quiet_cell_is_ok_and_says_nothing():
    """Does a cell with nothing observed come out ok, with no limit, note or stop?"""
    result = outcome()
    assert (result.status, result.limit, result.message) == (CELL_OK, None, "")
    assert (result.kernel_status, result.stops, result.lost, result.notes) == \
        (None, False, False, ())


def test_an_error_reply_is_an_error_with_its_text():
    """Is an error reply the cell's message as it came, with no limit blamed?"""
    result = outcome(error="ZeroDivisionError: division by zero")
    assert (result.status, result.limit, result.message) == \
        (CELL_ERROR, None, "ZeroDivisionError: division by zero")
    assert not result.stops


@pytest.mark.parametrize(("error", "signals", "limit", "suffix"), [
    ("RuntimeError: can't start new thread", {"pids_hit": True}, "max_processes",
     messages.CELL_PIDS.format(limit=64)),
    ("MemoryError: ", {"oom": True}, "memory_mb", None),
    ("OSError: [Errno 28] No space left on device", {}, "disk_mb",
     messages.CELL_DISK.format(limit_mb=64)),
    ("OSError: [Errno 27] File too large", {}, "disk_mb", messages.CELL_DISK.format(limit_mb=64)),
    ("OSError: [Errno 28] No space left on device", {"pids_hit": True, "oom": True},
     "max_processes", messages.CELL_PIDS.format(limit=64)),
])
def test_an_error_names_the_limit_behind_it(error, signals, limit, suffix):
    """Is an error caused by a limit blamed on it (processes before memory before disk)?"""
    result = outcome(error=error, **signals)
    assert (result.status, result.limit) == (CELL_ERROR, limit)
    assert result.message == (f"{error} — {suffix}" if suffix else error)


def test_a_timeout_answered_in_time_lets_grading_go_on():
    """Is an interrupted cell a timeout that does not stop the notebook?"""
    result = outcome(timed_out=True, error="KeyboardInterrupt")
    assert (result.status, result.limit) == (CELL_TIMEOUT, "cell_timeout_s")
    assert result.message == messages.CELL_TIMEOUT.format(limit_s=3)
    assert not result.stops and not result.lost and result.kernel_status is None


def test_a_timeout_cut_short_by_the_budget_stops_the_notebook_without_killing():
    """When the budget shortened the cell's timeout, does the budget win and stop the run,
    with the kernel still alive for the export?"""
    result = outcome(timed_out=True, budget_bound=True)
    assert (result.status, result.limit, result.kernel_status) == \
        (CELL_KILLED, "notebook_budget_s", "budget")
    assert result.message == messages.CELL_BUDGET.format(limit_s=20)
    assert result.stops and not result.lost


@pytest.mark.parametrize(("budget_bound", "limit", "kernel_status", "message"), [
    (False, "cell_timeout_s", "killed", messages.CELL_TIMEOUT_KILLED.format(limit_s=3)),
    (True, "notebook_budget_s", "budget", messages.CELL_BUDGET.format(limit_s=20)),
])
def test_an_ignored_interrupt_loses_the_kernel(budget_bound, limit, kernel_status, message):
    """Is a cell that ignored the interrupt killed, blamed on the timeout that fired (the
    budget when it was the shorter), even when the cgroup also saw an OOM?"""
    result = outcome(ignored=True, timed_out=True, budget_bound=budget_bound, oom=True)
    assert (result.status, result.limit, result.kernel_status) == \
        (CELL_KILLED, limit, kernel_status)
    assert result.message == message
    assert result.stops and result.lost


def test_a_death_with_an_oom_kill_is_the_memory_limit():
    result = outcome(died=True, oom=True, pids_hit=True, died_how="signal 9")
    assert (result.status, result.limit, result.kernel_status) == (CELL_KILLED, "memory_mb", "oom")
    assert result.message == messages.CELL_OOM.format(limit_mb=256)


@pytest.mark.parametrize(("pids_hit", "limit"), [(False, "kernel_died"),
                                                  (True, "max_processes")])
def test_a_death_says_how_and_blames_refused_processes(pids_hit, limit):
    """Does a crash say how the kernel ended, and blame the process limit if it was hit?"""
    how = messages.DIED_HOW_SIGNAL.format(signal="SIGSEGV")
    result = outcome(died=True, pids_hit=pids_hit, died_how=how)
    assert (result.status, result.limit, result.kernel_status) == (CELL_KILLED, limit, "died")
    assert result.message == messages.CELL_DIED.format(how=how)
    assert result.stops and result.lost


def test_an_ok_cell_that_hit_the_process_limit_says_so():
    result = outcome(pids_hit=True)
    assert (result.status, result.limit) == (CELL_OK, "max_processes")
    assert result.message == messages.CELL_PIDS.format(limit=64)


def test_cut_output_is_a_note_and_fills_only_an_empty_message():
    """Is cut output noted for the result, the message of an otherwise quiet cell, and no
    more than a note when another limit already decided the cell?"""
    note = messages.OUTPUT_CUT.format(cell=4, limit=1000)
    quiet = outcome(output_cut=True)
    assert (quiet.status, quiet.limit, quiet.message, quiet.notes) == \
        (CELL_OK, "output_bytes", note, (note,))
    timed = outcome(output_cut=True, timed_out=True)
    assert (timed.limit, timed.message) == \
        ("cell_timeout_s", messages.CELL_TIMEOUT.format(limit_s=3))
    assert timed.notes == (note,)
    failed = outcome(output_cut=True, error="ValueError: x")
    assert (failed.limit, failed.message) == ("output_bytes", "ValueError: x")


def test_a_dropped_message_is_noted_only_while_the_kernel_lives():
    """Is an oversized message noted (after a cut), but a dead kernel's disconnect not?"""
    dropped = messages.OUTPUT_DROPPED.format(cell=4, limit=1000 + 2**20)
    both = outcome(output_cut=True, dropped=True)
    assert both.notes == (messages.OUTPUT_CUT.format(cell=4, limit=1000), dropped)
    assert outcome(dropped=True).message == dropped
    dead = outcome(died=True, dropped=True, died_how="x")
    assert dead.notes == () and dead.limit == "kernel_died"


def test_a_long_message_is_cut():
    result = outcome(error="E: " + "x" * 5000)
    assert len(result.message) == MESSAGE_CHARS * 2
