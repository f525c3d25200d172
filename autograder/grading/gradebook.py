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
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from autograder.facts import GradeResult


def nbgrader_api() -> ModuleType:
    """``nbgrader.api``. Importing it the usual way runs ``nbgrader/__init__.py`` first, which
    loads nbgrader's four Jupyter server extensions (jupyter_server, tornado, the exchange) for
    the notebook server's sake: about 0.4 CPU-s of every grade, for a database write (issue
    12). When nothing in this process has imported nbgrader yet, the package is registered with
    its version but without running its ``__init__``: its submodules import one another and
    read nothing else from the package. A Jupyter server loads nbgrader as an extension in its
    own process, never in this one."""
    if "nbgrader" not in sys.modules:
        spec = importlib.util.find_spec("nbgrader")
        if spec is not None and spec.submodule_search_locations is not None:
            package = importlib.util.module_from_spec(spec)
            sys.modules["nbgrader"] = package
            package.__version__ = importlib.import_module("nbgrader._version").__version__
    return importlib.import_module("nbgrader.api")


@contextlib.contextmanager
def _gradebook(db_path: Path) -> Iterator:
    """nbgrader's Gradebook, one writer at a time."""
    api = nbgrader_api()

    # A new database is stamped with the head of nbgrader's migrations, which nbgrader finds by
    # running the ``alembic`` command in a new interpreter (2.5 s, and the venv's bin folder
    # must be on PATH); the same head, read in this process from the same scripts:
    api.get_alembic_version = alembic_head
    # One writer at a time across processes: two `course grade` runs starting together on a
    # new gradebook both ran CREATE TABLE, and the second died ("table ... already exists");
    # the service runs one per submission, several at once.
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(db_path.with_name(db_path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with api.Gradebook(f"sqlite:///{db_path}") as gb:
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
    MissingEntry = nbgrader_api().MissingEntry  # noqa: N806 (nbgrader's class)

    unknown = []
    with _gradebook(db_path) as gb:
        gb.update_or_create_student(result.student)
        try:
            gb.find_submission(result.assignment_id, result.student)
        except MissingEntry:
            # Without no_autoflush, nbgrader's add_submission makes SQLAlchemy flush while it
            # builds the rows and warn ("... not in session, add operation ... will not
            # proceed"; the rows are written at the commit all the same). That warning was
            # filtered with warnings.catch_warnings(), which is process-wide: another grading
            # thread leaving its own catch_warnings() restored the filters in between, and the
            # warning reached the demo's console. Nothing to filter now.
            with gb.db.no_autoflush:
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


def alembic_head() -> str:
    """The head revision of nbgrader's own migration scripts (what ``alembic heads`` prints)."""
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    head = ScriptDirectory(ALEMBIC_DIR).get_current_head()
    if head is None:
        raise RuntimeError(f"nbgrader's migrations in {ALEMBIC_DIR} have no head revision")
    return head
