"""Grading slots: which of the machine's slot uids a job runs as, held across processes.

Decision: one ``flock`` per slot on ``<STAGE_ROOT>/slot-<n>.lock``, so two graders on one
machine (the hub's service and an instructor's ``course grade``, say) never run two
submissions under one slot uid at once; the lock dies with its holder, even with kill -9.
Whoever takes a slot first releases what a killed holder left behind (mounted tmpfs,
stage folders) — no job of that slot can be running then.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from autograder.grading.stage import STAGE_ROOT, JobLayout, release_job_dir


def release_leftovers(slot: int) -> list[Path]:
    """Unmount and delete job folders of slot ``slot`` that a grader killed with -9 left
    behind (their tmpfs stays mounted otherwise). Only the holder of the slot's lock may
    call this: no other job of that slot can be running."""
    left = sorted(STAGE_ROOT.glob(f"{slot}-*"))
    for stage in left:
        release_job_dir(JobLayout(job_dir=stage / "unused", stage=stage))
    return left


@contextlib.contextmanager
def slot_lock(slot: int) -> Iterator[None]:
    """Hold slot ``slot`` for this job, across every grader process on the machine.

    Two graders (say the hub's service and an instructor's ``course grade``) must never
    run two submissions under one slot uid at once; the second waits for the first.
    """
    STAGE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(STAGE_ROOT / f"slot-{slot}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        release_leftovers(slot)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def free_slot(preferred: int, *, count: int) -> Iterator[int]:
    """Hold a free slot among ``0..count-1`` (``preferred`` first) and yield its number; wait
    for ``preferred`` only when every slot is held. Two graders on one machine (the hub's
    service and an instructor's ``course grade``, say) then never queue behind each other
    while a slot is free."""
    STAGE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    order = [preferred, *(s for s in range(count) if s != preferred)]
    for slot in order:
        handle = open(STAGE_ROOT / f"slot-{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            release_leftovers(slot)
            yield slot
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    with slot_lock(preferred):
        yield preferred
