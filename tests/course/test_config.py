"""course_config.py: loading, validation messages, and the `course config check` command."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.course.config import Course, assignment_points, check_config, load_course
from autograder.course.settings import Limits
from autograder.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_config_is_valid():
    """Does the repository's own course_config.py pass every check?"""
    assert check_config(load_course(ROOT)) == []


def with_changes(**changes) -> Course:
    course = load_course(ROOT)
    return Course(root=course.root, config=replace(course.config, **changes))


def test_bad_values_name_the_field_and_the_fix():
    """Does each problem name its field and say what to do?"""
    course = load_course(ROOT)
    bad = with_changes(
        limits=Limits(cell_timeout_s=-1),
        hub=replace(course.config.hub, port=80, students=("student1", "student1")),
        default_profile="huge",
    )
    problems = check_config(bad)
    assert "limits.cell_timeout_s: -1 is not a positive number — set a number above 0" in problems
    assert "hub.port: 80 is not a high port — use a port between 1025 and 65535" in problems
    assert "hub.students: a user is listed twice — give each user one entry" in problems
    assert any(p.startswith("default_profile: 'huge' is not in profiles") for p in problems)


def _notebook_points(notebook: Path) -> dict:
    """grade_id -> points of the notebook's autograded cells, read here as plain JSON."""
    cells = json.loads(notebook.read_text())["cells"]
    return {m["grade_id"]: m["points"] for m in
            (c.get("metadata", {}).get("nbgrader", {}) for c in cells) if m.get("grade")}


def _scratch(tmp_path: Path, *folders: str) -> Path:
    shutil.copy(ROOT / "course_config.py", tmp_path / "course_config.py")
    for name in folders:
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "data"))
    return tmp_path


def test_points_are_the_source_notebooks():
    """Are an assignment's points exactly its source notebook's nbgrader points, item for item
    and in notebook order (course_config.py no longer has any)?"""
    course = load_course(ROOT)
    a = course.config.assignments[0]
    assert "points=" not in (ROOT / "course_config.py").read_text()
    expected = _notebook_points(course.source_dir(a.assignment_id) / a.notebook)
    assert list(a.points.items()) == list(expected.items())


def test_a_change_of_points_in_the_notebook_is_what_load_course_reads(tmp_path):
    """Does editing one cell's points in the notebook change the loaded points, and only that?"""
    root = _scratch(tmp_path, "source")
    a = load_course(root).config.assignments[0]
    notebook = root / "source" / a.assignment_id / a.notebook
    item = list(a.points)[-1]
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == item:
            cell["metadata"]["nbgrader"]["points"] = a.points[item] + 4
    notebook.write_text(json.dumps(data))
    assert load_course(root).config.assignments[0].points == {**a.points, item: a.points[item] + 4}


def test_without_the_source_the_release_notebook_gives_the_points(tmp_path):
    """Where only release/ ships (a grading worker), are the points the release notebook's?"""
    root = _scratch(tmp_path, "release")
    a = load_course(root).config.assignments[0]
    release_nb = root / "release" / a.assignment_id / a.notebook
    assert a.points == _notebook_points(release_nb)
    assert a.points == load_course(ROOT).config.assignments[0].points


def test_without_any_notebook_grading_names_both_and_the_fix(tmp_path):
    """With neither notebook, does the course still load (building data or a hub needs no
    notebook), while asking for the points (as grading does) is a ConfigError naming both
    files and what to do?"""
    root = _scratch(tmp_path)
    course = load_course(root)
    assert course.config.assignments[0].points == {}
    with pytest.raises(ConfigError) as info:
        assignment_points(course, course.config.assignments[0])
    assert str(root / "source" / "cnn_transfer" / "cnn_transfer.ipynb") in info.value.message
    assert str(root / "release" / "cnn_transfer" / "cnn_transfer.ipynb") in info.value.message
    assert "course release cnn_transfer" in info.value.hint


def test_a_notebook_without_autograded_cells_is_refused(tmp_path):
    """Is a notebook with no autograded cell (nothing would be graded) a ConfigError naming it?"""
    root = _scratch(tmp_path, "source")
    notebook = root / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        cell["metadata"].get("nbgrader", {})["grade"] = False
    notebook.write_text(json.dumps(data))
    course = load_course(root)
    with pytest.raises(ConfigError, match="has no autograded test cell") as info:
        assignment_points(course, course.config.assignments[0])
    assert str(notebook) in info.value.message and "Create Assignment" in info.value.hint


def test_points_written_in_course_config_are_refused(tmp_path):
    """Is an old course_config.py that still sets points= refused (its numbers would be
    silently ignored), naming the assignment and what to delete?"""
    root = _scratch(tmp_path, "source")
    config = root / "course_config.py"
    config.write_text(config.read_text() + """
import dataclasses as _dc
COURSE = _dc.replace(COURSE, assignments=(_dc.replace(COURSE.assignments[0],
                                                      points={"q1_conv_params": 9}),))
""")
    with pytest.raises(ConfigError, match=r"assignments\[0\] \(cnn_transfer\) sets points=") as info:
        load_course(root)
    assert "delete points=" in info.value.hint


def test_cli_check_passes_and_fails_with_one_line_and_hint(tmp_path, monkeypatch, capsys):
    """Does `course config check` exit 0 when valid, and 2 with the reason and a hint when not?"""
    monkeypatch.chdir(ROOT)
    assert main(["config", "check"]) == 0
    assert "course_config.py is valid" in capsys.readouterr().out

    shutil.copy(ROOT / "course_config.py", tmp_path / "course_config.py")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/source/cnn_transfer/cnn_transfer.ipynb" in err
    assert "create it or fix the name in course_config.py" in err
    assert "hint: fix each field named above" in err


def test_a_config_that_does_not_load_is_a_config_error(tmp_path):
    """Is a syntax error in course_config.py reported with the file, not a traceback?"""
    (tmp_path / "course_config.py").write_text("COURSE = (\n")
    with pytest.raises(ConfigError, match="course_config.py, line 1, failed to load: SyntaxError"):
        load_course(tmp_path)


def test_missing_config_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no course_config.py in"):
        load_course()


@pytest.mark.parametrize(("text", "line", "error"), [
    ("from autograder.course.settings import CourseConfig\n\nCOURSE = CourseConfig(\n", 3,
     "SyntaxError"),
    ("x = 1\ny = 2\nCOURSE = undefined_name\n", 3, "NameError"),
])
def test_a_config_that_fails_to_load_names_its_line(tmp_path, text, line, error):
    """Does a broken course_config.py say which line to fix, instead of 'the line named above'?"""
    (tmp_path / "course_config.py").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_course(tmp_path)
    assert info.value.message.startswith(f"{tmp_path / 'course_config.py'}, line {line}, failed "
                                         f"to load: {error}")
    assert info.value.hint.startswith(f"fix line {line} of course_config.py")
