"""A grading worker's check of its own course copy, before it takes any work.

Start workers with this module as a preload::

    COURSE_ROOT=/srv/course dask worker tcp://scheduler:8786 --nthreads 1 \\
        --preload-nanny autograder.grading.dask_worker [--resources GPU=1]

(``--preload`` instead with ``--no-nanny``.) ``dask_setup`` runs before the worker joins the
scheduler. Distributed only logs a failing preload and starts the worker anyway, so a
refusal ends the process itself, exit status 78 (EX_CONFIG), with the reason on stderr. It loads ``course_config.py``
from ``COURSE_ROOT`` and, for every assignment (or those in ``COURSE_ASSIGNMENTS``,
comma-separated), at ``COURSE_PROFILE``: the release notebook and rubric are there, the
answer key is current, and the dataset matches its manifest when the assignment reads
images. Anything missing or changed stops the worker with the reason and the fix, so the
scheduler never sends a submission to a worker that cannot grade it right. Each task then
checks the client's file hashes again (:mod:`autograder.grading.remote`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ASSIGNMENTS_ENV = "COURSE_ASSIGNMENTS"


class WorkerRefused(RuntimeError):
    """The worker's course copy cannot grade; the message says what and how to fix it."""


def check_course_copy(root: Path, *, assignments: list[str] | None = None) -> list[str]:
    """What this copy can grade (assignment ids); raises :class:`WorkerRefused` otherwise."""
    from autograder.course.config import active_profile_name, load_course
    from autograder.course.datasets import verify_dataset
    from autograder.errors import CourseError
    from autograder.grading.pipeline import make_context

    try:
        course = load_course(root)
        profile = active_profile_name(course.config)
        ids = assignments or [a.assignment_id for a in course.config.assignments]
        images = False
        for aid in ids:
            ctx = make_context(course, aid, profile_name=profile, out_dir=root / "unused")
            images = images or ctx.assignment.uses_images
        if images:
            verify_dataset(course)
    except CourseError as exc:
        raise WorkerRefused(f"this worker's course copy at {root} cannot grade: {exc.message} "
                            f"(fix: {exc.hint})") from None
    if os.geteuid() == 0:  # the checker then runs as nobody: it must read a read-only copy as it is
        from autograder.course.permissions import GRADER_GROUP, unreadable_by_checker

        closed = unreadable_by_checker(course)
        if closed:
            raise WorkerRefused(
                f"this worker's course copy at {root} is read-only and the checker (nobody, in "
                f"{GRADER_GROUP}) cannot read: {', '.join(map(str, closed))} (fix: seed the "
                f"volume with `chmod -R a+rX` over it, hub/README.md step 5)") from None
    return ids


REFUSED_EXIT = 78
"""EX_CONFIG: the worker's configuration (its course copy) is wrong."""


def dask_setup(server: Any) -> None:
    """The preload's entry (a nanny's or a worker's): check the copy or end the process."""
    import sys

    root = Path(os.environ.get("COURSE_ROOT") or os.getcwd())
    chosen = [a for a in os.environ.get(ASSIGNMENTS_ENV, "").split(",") if a] or None
    try:
        ids = check_course_copy(root, assignments=chosen)
    except WorkerRefused as exc:
        print(f"course grading worker refused: {exc}", file=sys.stderr, flush=True)
        os._exit(REFUSED_EXIT)  # distributed would log a raised error and start anyway
    print(f"course grading worker: {root} can grade {', '.join(ids)}", file=sys.stderr, flush=True)
