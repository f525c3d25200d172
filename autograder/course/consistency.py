"""One place per question: the notebook's autograded cells carry the points.

An item is graded when two places name it: an autograded test cell in the notebook
(nbgrader ``grade_id`` and ``points`` in its metadata, as nbgrader's Create Assignment
toolbar writes them) and a ``test_<grade_id>`` function in
``autograder/rubric/<assignment>/test_*.py``. The cells' points are the only points:
:func:`read_points` is how ``load_course`` fills ``Assignment.points`` (from the source
notebook, or the release notebook where only that exists: a Gradescope package, a grading
worker), so nbgrader's gradebook, the release and the kit's ``results.json`` cannot disagree.

A rubric test without a cell would run and never count; a cell without a rubric test would
promise the student points nobody checks; a cell without positive points counts for
nothing. ``course config check`` and ``course release`` refuse all of these, naming the
file and the item.

Rejected: points in ``course_config.py`` as well (a third copy that had to be kept equal to
the notebook's by a check, and that release wrote back into the notebook).

The rubric is read with the AST (its test functions are never imported here).
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.course.settings import Assignment
from autograder.errors import ConfigError

if TYPE_CHECKING:
    from autograder.course.config import Course

SET_POINTS = ("give the cell a positive number of points in its nbgrader metadata "
              "(View > Cell Toolbar > Create Assignment)")
"""What to do about a cell's points, in every message that names a bad one."""


def grade_cells(data: dict, *, name: str) -> tuple[dict[str, float], list[str]]:
    """``grade_id -> points`` of a notebook's autograded cells (notebook order), and the
    problems found reading them: no grade_id, a grade_id used twice, points missing, not a
    number, zero or negative. ``data`` is the notebook as JSON; ``name`` is its file name."""
    problems: list[str] = []
    cells: dict[str, float] = {}
    for index, cell in enumerate(data.get("cells", [])):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        if not meta.get("grade"):
            continue
        grade_id = meta.get("grade_id")
        where = f"{name} cell {index + 1}"
        if not isinstance(grade_id, str) or not grade_id:
            problems.append(f"{where}: an autograded cell without a grade_id")
            continue
        if grade_id in cells:
            problems.append(f"{where}: grade_id {grade_id!r} is used by two autograded cells")
        points = meta.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)):
            problems.append(f"{where} ({grade_id}): no numeric points in its nbgrader "
                            f"metadata — {SET_POINTS}")
            points = 0
        elif points <= 0:
            problems.append(f"{where} ({grade_id}): {points:g} points — {SET_POINTS}")
        cells[grade_id] = points  # as written (2 stays 2), so results.json keeps its numbers
    return cells, problems


def read_grade_cells(notebook: Path) -> tuple[dict[str, float], list[str]]:
    """:func:`grade_cells` of a notebook file."""
    return grade_cells(json.loads(notebook.read_text(encoding="utf-8")), name=notebook.name)


def _readable(path: Path) -> bool:
    try:
        return path.is_file() and os.access(path, os.R_OK)
    except OSError:  # a folder above it closed to this user (permissions.py)
        return False


def points_notebook(course: Course, assignment: Assignment) -> Path:
    """The notebook whose cells give the assignment's points: the source notebook, else the
    release notebook (it carries the same nbgrader points and is public). A
    :class:`ConfigError` naming both when neither can be read."""
    aid = assignment.assignment_id
    source = course.source_dir(aid) / assignment.notebook
    release = course.release_dir(aid) / assignment.notebook
    for notebook in (source, release):
        if _readable(notebook):
            return notebook
    raise ConfigError(
        f"{aid}: neither the source notebook {source} nor the release notebook {release} "
        "can be read, and the points of each question live in its autograded cells",
        hint=f"put the source notebook at {source} (or fix Assignment.notebook in "
             f"course_config.py), or run `course release {aid}` where only the release ships")


def read_points(notebook: Path, *, assignment_id: str) -> dict[str, float]:
    """``grade_id -> points`` of the notebook's autograded cells; a :class:`ConfigError`
    naming the notebook, the cell and the fix when a cell's points are unusable or there
    is no autograded cell at all."""
    try:
        cells, problems = read_grade_cells(notebook)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{notebook} cannot be read as a notebook: {exc}",
                          hint="open it in Jupyter and save it again") from exc
    if problems:
        raise ConfigError(
            f"{assignment_id}: the autograded cells of {notebook} have {len(problems)} "
            "problem(s):\n  " + "\n  ".join(problems),
            hint="points live in the notebook only: fix each cell named above")
    if not cells:
        raise ConfigError(
            f"{assignment_id}: {notebook} has no autograded test cell, so nothing would be graded",
            hint="mark each question's check cell 'Autograder tests' in nbgrader's Create "
                 "Assignment toolbar, with its grade_id (the rubric's test_<grade_id>) and points")
    return cells


def rubric_items(rubric_dir: Path) -> dict[str, Path]:
    """Item name -> the rubric file defining ``test_<item>`` (top-level functions only)."""
    items: dict[str, Path] = {}
    for path in sorted(rubric_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and node.name.startswith("test_"):
                items[node.name[len("test_"):]] = path
    return items


def assignment_problems(course: Course, assignment: Assignment) -> list[str]:
    """Every disagreement between the assignment's source notebook and its rubric."""
    aid = assignment.assignment_id
    return disagreements(aid, notebook=course.source_dir(aid) / assignment.notebook,
                         rubric_dir=course.rubric_dir(aid))


def disagreements(aid: str, *, notebook: Path, rubric_dir: Path) -> list[str]:
    """Bad points in ``notebook``'s autograded cells, rubric tests without a cell, and cells
    without a rubric test, each naming the file and the item."""
    if not notebook.is_file():
        return [f"{aid}: the source notebook {notebook} does not exist"]
    if not rubric_dir.is_dir():
        return [f"{aid}: the rubric folder {rubric_dir} does not exist"]
    cells, problems = read_grade_cells(notebook)
    return problems + item_problems(aid, cells=cells, notebook=notebook.name,
                                    rubric_dir=rubric_dir)


def item_problems(aid: str, *, cells: dict[str, float], notebook: str, rubric_dir: Path
                  ) -> list[str]:
    """Rubric tests with no autograded cell in ``notebook`` and cells with no rubric test."""
    problems = []
    tests = rubric_items(rubric_dir)
    if not cells:
        problems.append(f"{aid}: {notebook} has no autograded test cell, so nothing is graded")
    for name, path in tests.items():
        if name not in cells:
            problems.append(f"{aid}: rubric test test_{name} ({rubric_dir.name}/{path.name}) "
                            f"has no autograded cell with grade_id {name!r} in {notebook}: "
                            "it would run and never count")
    for name in cells:
        if name not in tests:
            problems.append(f"{aid}: {notebook}'s autograded cell {name!r} has no rubric test: "
                            f"no file in {rubric_dir} defines test_{name}, so its points "
                            "would be promised and never checked")
    return problems


def course_problems(course: Course) -> list[str]:
    return [p for a in course.config.assignments for p in assignment_problems(course, a)]
