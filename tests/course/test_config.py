"""course_config.py: loading, validation messages, and the `course config check` command."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.course.config import Course, check_config, load_course
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


def test_points_must_name_rubric_tests():
    """Is a rubric item without a matching test in autograder/rubric/<id>/ reported?"""
    course = load_course(ROOT)
    a = course.config.assignments[0]
    bad = with_changes(assignments=(replace(a, points={**a.points, "q9_typo": 1}),))
    assert any("no rubric test named q9_typo" in p for p in check_config(bad))


def test_cli_check_passes_and_fails_with_one_line_and_hint(tmp_path, monkeypatch, capsys):
    """Does `course config check` exit 0 when valid, and 2 with the reason and a hint when not?"""
    monkeypatch.chdir(ROOT)
    assert main(["config", "check"]) == 0
    assert "course_config.py is valid" in capsys.readouterr().out

    shutil.copy(ROOT / "course_config.py", tmp_path / "course_config.py")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert "cnn_transfer.ipynb does not exist" in err
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
