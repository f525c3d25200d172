"""`course config check` refuses an assignment whose notebook, rubric and points disagree.

Each case starts from the real assignment (its source notebook, rubric folder and points,
which agree) and breaks one thing the way an instructor editing one of the three files
would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.course.config import load_course
from autograder.course.consistency import course_problems, disagreements

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def parts(tmp_path):
    course = load_course(REPO)
    assignment = course.config.assignments[0]
    aid = assignment.assignment_id
    notebook = tmp_path / assignment.notebook
    shutil.copy(course.source_dir(aid) / assignment.notebook, notebook)
    rubric = tmp_path / "rubric" / aid
    shutil.copytree(course.rubric_dir(aid), rubric, ignore=shutil.ignore_patterns("__pycache__"))
    return {"aid": aid, "notebook": notebook, "rubric_dir": rubric,
            "points": dict(assignment.points)}


def problems(parts):
    return disagreements(parts["aid"], notebook=parts["notebook"], rubric_dir=parts["rubric_dir"],
                         points=parts["points"])


def set_points(notebook: Path, grade_id: str, value) -> None:
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == grade_id:
            meta["points"] = value
    notebook.write_text(json.dumps(data))


def test_the_shipped_assignments_agree():
    """Do the kit's own notebook, rubric and points agree (so the checks below can only fire
    on a real edit)?"""
    assert course_problems(load_course(REPO)) == []


def test_a_rubric_test_without_points_is_named(parts):
    """Is a rubric test that would run but never count refused, naming it and its file?"""
    item = next(iter(parts["points"]))
    del parts["points"][item]
    found = problems(parts)
    assert any(f"test_{item}" in p and "never count" in p for p in found), found


def test_points_for_a_check_nobody_wrote_are_named(parts):
    """Is a points entry with no rubric test refused?"""
    item = next(iter(parts["points"]))
    for path in parts["rubric_dir"].glob("test_*.py"):
        path.write_text(path.read_text().replace(f"def test_{item}(", f"def check_{item}("))
    found = problems(parts)
    assert any(f"defines test_{item}" in p for p in found), found


def test_points_that_differ_from_the_notebook_are_named(parts):
    """Is a cell worth N in nbgrader's metadata but M in course_config.py refused, with both?"""
    item, value = next(iter(parts["points"].items()))
    set_points(parts["notebook"], item, value + 1)
    found = problems(parts)
    assert any(item in p and f"worth {value:g}" in p and f"{value + 1:g} in" in p
               for p in found), found


def test_an_autograded_cell_nobody_checks_is_named(parts):
    """Is a new autograded cell without a rubric test or points refused?"""
    data = json.loads(parts["notebook"].read_text())
    data["cells"].append({"cell_type": "code", "execution_count": None, "outputs": [],
                          "source": "assert True", "metadata": {"nbgrader": {
                              "grade": True, "grade_id": "q9_extra", "points": 1,
                              "locked": True, "solution": False, "schema_version": 3}}})
    parts["notebook"].write_text(json.dumps(data))
    found = problems(parts)
    assert any("q9_extra" in p and "no rubric test" in p for p in found), found


def test_missing_points_metadata_is_named(parts):
    """Is an autograded cell without numeric points named by its cell number?"""
    item = next(iter(parts["points"]))
    set_points(parts["notebook"], item, "two")
    found = problems(parts)
    assert any(item in p and "no numeric points" in p and " cell " in p for p in found), found


def test_course_config_check_fails_on_a_disagreement(tmp_path):
    """Does `course config check` exit non-zero and print the problem, for a course whose
    config drops one item's points?"""
    shutil.copytree(REPO / "source", tmp_path / "source")
    course = load_course(REPO)
    item = next(iter(course.config.assignments[0].points))
    (tmp_path / "course_config.py").write_text((REPO / "course_config.py").read_text() + f"""
import dataclasses as _dc
_a = COURSE.assignments[0]
COURSE = _dc.replace(COURSE, assignments=(_dc.replace(
    _a, points={{k: v for k, v in _a.points.items() if k != {item!r}}}),))
""")
    (tmp_path / "datasets").symlink_to(REPO / "datasets")
    done = subprocess.run([sys.executable, "-m", "autograder.cli", "config", "check"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "COURSE_ROOT": str(tmp_path)})
    assert done.returncode != 0
    assert f"test_{item}" in done.stdout + done.stderr
