"""Do the three places that describe an assignment's grading agree?

An item is graded only when all three name it: an autograded cell in the source notebook
(nbgrader ``grade_id`` with ``points`` in its metadata), a ``test_<grade_id>`` function in
``autograder/rubric/<assignment>/test_*.py``, and an entry in the assignment's ``points``
in ``course_config.py`` with the same number of points. A rubric test missing from
``points`` would be run and never counted; a cell without a rubric test would promise the
student points nobody checks; two different point values would make nbgrader's gradebook
and the kit's results disagree. ``course config check`` refuses all of these, naming the
file and the item.

The rubric is read with the AST (its test functions are never imported here).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from autograder.course.config import Course
from autograder.course.settings import Assignment


def autograded_cells(notebook: Path) -> tuple[dict[str, float], list[str]]:
    """``grade_id -> points`` of the notebook's autograded cells, and problems found reading
    them (a duplicate grade_id, missing or non-numeric points)."""
    problems: list[str] = []
    cells: dict[str, float] = {}
    data = json.loads(notebook.read_text(encoding="utf-8"))
    for index, cell in enumerate(data.get("cells", [])):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        if not meta.get("grade"):
            continue
        grade_id = meta.get("grade_id")
        where = f"{notebook.name} cell {index + 1}"
        if not isinstance(grade_id, str) or not grade_id:
            problems.append(f"{where}: an autograded cell without a grade_id")
            continue
        if grade_id in cells:
            problems.append(f"{where}: grade_id {grade_id!r} is used by two autograded cells")
        points = meta.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)):
            problems.append(f"{where} ({grade_id}): no numeric points in its nbgrader metadata")
            points = 0
        cells[grade_id] = float(points)
    return cells, problems


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
    """Every disagreement between the assignment's source notebook, rubric and ``points``."""
    aid = assignment.assignment_id
    return disagreements(aid, notebook=course.source_dir(aid) / assignment.notebook,
                         rubric_dir=course.rubric_dir(aid), points=dict(assignment.points))


def disagreements(aid: str, *, notebook: Path, rubric_dir: Path,
                  points: dict[str, float]) -> list[str]:
    if not notebook.is_file():
        return [f"{aid}: the source notebook {notebook} does not exist"]
    if not rubric_dir.is_dir():
        return [f"{aid}: the rubric folder {rubric_dir} does not exist"]
    cells, problems = autograded_cells(notebook)
    tests = rubric_items(rubric_dir)
    points = {name: float(value) for name, value in points.items()}
    config = f"course_config.py points of {aid}"
    for name, path in tests.items():
        where = f"test_{name} ({rubric_dir.name}/{path.name})"
        if name not in points:
            problems.append(f"{aid}: rubric test {where} has no entry in {config}: "
                            "it would run and never count")
        if name not in cells:
            problems.append(f"{aid}: rubric test {where} has no autograded cell with grade_id "
                            f"{name!r} in {notebook.name}")
    for name in points:
        if name not in tests:
            problems.append(f"{aid}: {config} names {name!r}, but no rubric file in "
                            f"{rubric_dir} defines test_{name}")
        if name not in cells:
            problems.append(f"{aid}: {config} names {name!r}, but {notebook.name} has no "
                            "autograded cell with that grade_id")
        elif cells[name] != points[name]:
            problems.append(f"{aid}: {name!r} is worth {points[name]:g} in {config} but "
                            f"{cells[name]:g} in {notebook.name}'s nbgrader metadata")
    for name in cells:
        if name not in points and name not in tests:
            problems.append(f"{aid}: {notebook.name}'s autograded cell {name!r} has no rubric "
                            f"test and no entry in {config}")
    return problems


def course_problems(course: Course) -> list[str]:
    return [p for a in course.config.assignments for p in assignment_problems(course, a)]
