"""One place per question: the notebook's autograded cells carry the points, the rubric checks
them, and `course config check` refuses any item the two do not both name.

Each case starts from the real assignment (its source notebook and rubric folder, which
agree) and breaks one thing the way an instructor editing one of the two would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.course.config import load_course
from autograder.course.consistency import course_problems, disagreements, rubric_items

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
    return disagreements(parts["aid"], notebook=parts["notebook"], rubric_dir=parts["rubric_dir"])


def edit_cell(notebook: Path, item: str, /, **nbgrader) -> None:
    """Set (or, with ``None``, delete) nbgrader metadata keys of the cell whose grade_id is ``item``."""
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == item:
            for key, value in nbgrader.items():
                if value is None:
                    meta.pop(key, None)
                else:
                    meta[key] = value
    notebook.write_text(json.dumps(data))


def test_the_shipped_assignments_agree():
    """Do the kit's own notebook and rubric agree (so the checks below can only fire on a real
    edit)?"""
    assert course_problems(load_course(REPO)) == []


def test_a_rubric_test_without_an_autograded_cell_is_named(parts):
    """Is a rubric test whose cell is no longer autograded (it would run and never count,
    silently) refused, naming the test, its file and the notebook?"""
    item = next(iter(parts["points"]))
    edit_cell(parts["notebook"], item, grade=False, points=None)
    found = problems(parts)
    rubric_file = rubric_items(parts["rubric_dir"])[item].name
    assert any(f"test_{item} ({parts['aid']}/{rubric_file})" in p and "never count" in p
               and parts["notebook"].name in p for p in found), found


def test_an_autograded_cell_nobody_checks_is_named(parts):
    """Is a new autograded cell without a rubric test refused, naming it and the rubric folder?"""
    data = json.loads(parts["notebook"].read_text())
    data["cells"].append({"cell_type": "code", "execution_count": None, "outputs": [],
                          "source": "assert True", "metadata": {"nbgrader": {
                              "grade": True, "grade_id": "q9_extra", "points": 1,
                              "locked": True, "solution": False, "schema_version": 3}}})
    parts["notebook"].write_text(json.dumps(data))
    found = problems(parts)
    assert any("q9_extra" in p and "no rubric test" in p and str(parts["rubric_dir"]) in p
               for p in found), found


@pytest.mark.parametrize(("points", "said"), [
    (None, "no numeric points"), ("two", "no numeric points"), (True, "no numeric points"),
    (0, "0 points"), (-2, "-2 points")])
def test_a_cell_without_positive_points_is_named(parts, points, said):
    """Is an autograded cell whose points are missing, not a number, zero or negative named by
    its notebook, cell number and grade_id, with the fix?"""
    item = next(iter(parts["points"]))
    edit_cell(parts["notebook"], item, points=points)
    found = problems(parts)
    number = 1 + [c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                  for c in json.loads(parts["notebook"].read_text())["cells"]].index(item)
    assert any(f"{parts['notebook'].name} cell {number} ({item}): {said}" in p
               and "positive number of points" in p for p in found), found


def test_a_grade_id_used_twice_is_named(parts):
    """Are two autograded cells with one grade_id refused (the second would shadow the first)?"""
    first, second = list(parts["points"])[:2]
    edit_cell(parts["notebook"], second, grade_id=first)
    found = problems(parts)
    assert any(f"grade_id {first!r} is used by two autograded cells" in p for p in found), found


def _scratch_root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "source", tmp_path / "source",
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    shutil.copy(REPO / "course_config.py", tmp_path / "course_config.py")
    (tmp_path / "datasets").symlink_to(REPO / "datasets")
    return tmp_path


def _config_check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder.cli", "config", "check"],
                          cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "COURSE_ROOT": str(root)})


@pytest.mark.parametrize(("edit", "said"), [
    ({"grade": False, "points": None}, "never count"),  # a rubric test without a cell
    ({"points": 0}, "0 points"),
    ({"points": None}, "no numeric points"),
])
def test_course_config_check_fails_naming_the_notebook_and_the_item(tmp_path, edit, said):
    """Does `course config check` exit non-zero and name the notebook and the item, for a course
    whose source notebook stops grading one rubric item, or gives it no points?"""
    root = _scratch_root(tmp_path)
    course = load_course(root)
    assignment = course.config.assignments[0]
    item = next(iter(assignment.points))
    edit_cell(course.source_dir(assignment.assignment_id) / assignment.notebook, item, **edit)
    done = _config_check(root)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert item in out and assignment.notebook in out and said in out, out


def test_course_config_check_passes_and_counts_the_notebooks_points(tmp_path):
    """Does `course config check` pass on an agreeing copy and report the points it found in
    the notebook (so a change there shows)?"""
    root = _scratch_root(tmp_path)
    course = load_course(root)
    assignment = course.config.assignments[0]
    item, value = next(iter(assignment.points.items()))
    edit_cell(course.source_dir(assignment.assignment_id) / assignment.notebook, item,
              points=value + 5)
    done = _config_check(root)
    assert done.returncode == 0, done.stdout + done.stderr
    total = sum(assignment.points.values()) + 5
    assert f"{len(assignment.points)} items, {total:g} points" in " ".join(done.stdout.split())
