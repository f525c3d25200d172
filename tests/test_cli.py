"""The `course` command itself: version, help for every subcommand, options anywhere, and
the user's own input checked first."""

from __future__ import annotations

import argparse

import pytest

from autograder import cli


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def test_version(capsys):
    """Does `course --version` print the kit's version?"""
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("course 0.")


def test_every_subcommand_has_a_description():
    """Is `course <verb> [<sub>] --help` never empty (hub up, sandbox setup, ...)?"""
    leaves = list(_leaves(cli.build_parser()))
    assert len(leaves) > 10
    for path, parser in leaves:
        assert parser.description and len(parser.description) > 10, path


def test_options_may_come_before_the_submissions(tmp_path, monkeypatch, capsys):
    """Is `course grade cnn_transfer --force <folder>` read like the options last, and is a
    missing submission named before anything about weights, keys or the hidden split?"""
    args = cli.parse_args(cli.build_parser(), ["grade", "cnn_transfer", "--force",
                                               str(tmp_path / "a"), str(tmp_path / "b")])
    assert args.force and args.submissions == [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(SystemExit):
        cli.parse_args(cli.build_parser(), ["grade", "cnn_transfer", "x", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    assert cli.main(["grade", "cnn_transfer", "--force", str(tmp_path / "missing.ipynb")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"course grade: error: {tmp_path / 'missing.ipynb'} does not exist"


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(capsys):
    """Does a batch's progress reach a log (CI, the hub's service) as one plain line per step,
    with a student id's control characters shown as escapes?"""
    from autograder.commands.ui import progress_bar

    with progress_bar("grading cnn_transfer") as update:
        update(0, 2, "")
        update(1, 2, "alice")
        update(2, 2, "eve\x1b[2J")
    assert capsys.readouterr().err.splitlines() == [
        "grading cnn_transfer: 0/2", "grading cnn_transfer: 1/2 alice",
        "grading cnn_transfer: 2/2 eve\\x1b[2J"]


def test_concurrency_cannot_exceed_the_sandbox_slots(tmp_path, capsys):
    """Is `course grade --concurrency N` refused, with the fix, when the course has fewer
    sandbox slots than N (rather than failing later on a missing sandbox uid)?"""
    from autograder.course.config import load_course

    slots = load_course().config.grading.concurrency
    notebook = tmp_path / "alice.ipynb"
    notebook.write_text("{}")
    assert cli.main(["grade", "cnn_transfer", str(notebook), "--student", "alice",
                     "--concurrency", str(slots + 1)]) == 2
    err = capsys.readouterr().err
    assert f"more than the {slots} sandbox slots" in err and "course sandbox setup" in err


def test_the_readme_table_names_every_subcommand():
    """Does the README's command table name every `course` subcommand an instructor can type
    (`course hub release` included)?"""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `course "))
    missing = [" ".join(path) for path, _ in _leaves(cli.build_parser())
               if f"course {' '.join(path)}" not in table
               and not (len(path) == 2 and f"course {path[0]} " in table and f"/ `{path[1]}`" in table)]
    assert not missing, f"not in README's command table: {missing}"
