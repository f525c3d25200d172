"""Record scores in nbgrader's gradebook, so formgrader shows them.

:func:`ensure_assignment` registers the assignment, its notebook and one grade cell
per rubric item (each rubric item is the ``grade_id`` of one autograded test cell
in the source notebook, with the points that cell carries), so a score maps to
one ``Grade.auto_score``. Writes are idempotent: re-grading overwrites.

The gradebook file lives in the course root, which no sandbox ever mounts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from autograder.facts import GradeResult


@contextlib.contextmanager
def _gradebook(db_path: Path) -> Iterator:
    """nbgrader's Gradebook; it shells out to ``alembic`` when it creates a database, so the
    venv's bin folder must be on PATH even when ``course`` was started by its full path."""
    from nbgrader.api import Gradebook

    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
    # One writer at a time across processes: two `course grade` runs starting together on a
    # new gradebook both ran CREATE TABLE, and the second died ("table ... already exists");
    # the service runs one per submission, several at once.
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(db_path.with_name(db_path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with warnings.catch_warnings():
            # nbgrader's add_submission trips SQLAlchemy's autoflush warning; the rows are written.
            warnings.filterwarnings("ignore", module="nbgrader.api")
            warnings.filterwarnings("ignore", message=".*not in session.*")
            with Gradebook(f"sqlite:///{db_path}") as gb:
                yield gb


def ensure_assignment(db_path: Path, *, assignment_id: str, notebook_id: str,
                      points: dict[str, float]) -> None:
    """Create or update the assignment's entries so submissions can be recorded against them."""
    with _gradebook(db_path) as gb:
        gb.update_or_create_assignment(assignment_id)
        gb.update_or_create_notebook(notebook_id, assignment_id)
        for item, max_score in points.items():
            gb.update_or_create_grade_cell(item, notebook_id, assignment_id,
                                           max_score=float(max_score), cell_type="code")


def record_grades(db_path: Path, result: GradeResult, *, notebook_id: str) -> list[str]:
    """Write one submission's item scores; returns the items the gradebook did not know."""
    from nbgrader.api import MissingEntry

    unknown = []
    with _gradebook(db_path) as gb:
        gb.update_or_create_student(result.student)
        try:
            gb.find_submission(result.assignment_id, result.student)
        except MissingEntry:
            gb.add_submission(result.assignment_id, result.student)
        for item in result.items:
            try:
                grade = gb.find_grade(item.name, notebook_id, result.assignment_id, result.student)
            except MissingEntry:
                unknown.append(item.name)
                continue
            grade.auto_score = item.score
        gb.db.commit()
    return unknown
