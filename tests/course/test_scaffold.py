"""`course new <assignment>`: the scaffold releases, passes `course release --check`, and grades
end to end, in a temporary copy of the course (never in this checkout)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.cli import main
from autograder.course.config import Course, check_config, load_course
from autograder.course.scaffold import EXAMPLE_ITEM, EXAMPLE_POINTS, scaffold_assignment
from autograder.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
NEW = "quiz_one"


def _course_copy(parent: Path) -> Path:
    """A course root other uids can traverse, holding copies of the config, nbgrader's
    config and source/ (the scaffold writes into them), and the repository's datasets/."""
    root = parent / "course"
    root.mkdir()
    for folder in (parent, root):
        folder.chmod(0o755)
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "source", root / "source")
    (root / "datasets").symlink_to(REPO / "datasets")
    return root


@pytest.fixture
def scaffolded(tmp_path, monkeypatch) -> Course:
    root = _course_copy(tmp_path)
    monkeypatch.setenv("COURSE_ROOT", str(root))
    assert main(["new", NEW]) == 0
    return load_course(root)


def test_the_scaffold_is_a_valid_assignment(scaffolded: Course) -> None:
    """Does the new entry load with the notebook's points, check clean against its rubric, and
    leave the other assignments as they were?"""
    a = scaffolded.config.assignment(NEW)
    assert a.points == {EXAMPLE_ITEM: EXAMPLE_POINTS}
    assert not (a.uses_images or a.uses_backbone or a.trainings)
    assert check_config(scaffolded) == []
    before = load_course(REPO).config.assignments
    assert scaffolded.config.assignments[:len(before)] == before
    assert scaffolded.rubric_dir(NEW) == scaffolded.root / "autograder" / "rubric" / NEW
    assert not (REPO / "autograder" / "rubric" / NEW).exists()  # nothing leaked into the kit


def test_the_scaffold_releases_and_its_release_is_current(scaffolded: Course, capsys) -> None:
    """Does `course release <new>` work on the scaffold as written, and `--check` then pass
    (and fail once the source changes)?"""
    assert main(["release", NEW]) == 0
    assert main(["release", NEW, "--check"]) == 0
    released = nbformat.read(scaffolded.release_dir(NEW) / f"{NEW}.ipynb", as_version=4)
    code = "\n".join(c.source for c in released.cells if c.cell_type == "code")
    assert "6 * 7" not in code and "== 42" not in code  # solution and hidden test cleared
    notebook = scaffolded.source_dir(NEW) / f"{NEW}.ipynb"
    notebook.write_text(notebook.read_text().replace("six times seven", "seven times six"))
    assert main(["release", NEW, "--check"]) == 2
    assert f"course release {NEW}" in capsys.readouterr().err


def test_an_existing_or_bad_id_is_refused_and_nothing_is_written(tmp_path) -> None:
    """Is an id already in the config, or one that cannot name a package, refused with the
    fix, before any file is written?"""
    root = _course_copy(tmp_path)
    course = load_course(root)
    config_before = (root / "course_config.py").read_text()
    for bad, words in (("param_counting", "already an assignment"),
                       ("Quiz-1", "cannot name an assignment")):
        with pytest.raises(ConfigError, match=words) as caught:
            scaffold_assignment(course, bad)
        assert caught.value.hint
    (root / "source" / NEW).mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        scaffold_assignment(course, NEW)
    assert (root / "course_config.py").read_text() == config_before
    assert not (root / "autograder").exists()


def test_a_config_without_an_assignments_tuple_gets_the_entry_to_paste(tmp_path) -> None:
    root = _course_copy(tmp_path)
    text = (root / "course_config.py").read_text()
    (root / "course_config.py").write_text(
        text.replace("assignments=(CNN_TRANSFER, PARAM_COUNTING),",
                     "assignments=tuple([CNN_TRANSFER, PARAM_COUNTING]),"))
    with pytest.raises(ConfigError, match="assignments=") as caught:
        scaffold_assignment(load_course(root), NEW)
    assert f'assignment_id="{NEW}"' in caught.value.hint
    assert not (root / "source" / NEW).exists()


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.sandbox
def test_the_scaffold_grades_end_to_end(tmp_path, monkeypatch) -> None:
    """Calibrated from its own reference, does the scaffold give the reference every point the
    notebook's cell carries and a wrong answer none, through the real sandbox and checker?"""
    from autograder.course.samples import reference_submission
    from autograder.grading import sandbox

    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root to set up uids and cgroups")
    root = _course_copy(tmp_path)
    base = load_course(root)
    missing = sandbox.probe_sandbox(prefix=base.config.grading.sandbox_user_prefix, slots=1)
    if missing:
        pytest.skip("sandbox unavailable: " + "; ".join(missing))
    monkeypatch.setenv("COURSE_ROOT", str(root))
    assert main(["new", NEW]) == 0
    assert main(["release", NEW]) == 0
    assert main(["calibrate", NEW, "--profile", "reduced"]) == 0
    course = load_course(root)
    total = sum(course.config.assignment(NEW).points.values())
    source = course.source_dir(NEW) / f"{NEW}.ipynb"
    subs = tmp_path / "subs"
    for student, answer in (("reference", "6 * 7"), ("wrong", "6 * 8")):
        (subs / student).mkdir(parents=True)
        nb = reference_submission(source)  # as a student hands it in: no hidden tests
        for cell in nb.cells:
            cell.source = cell.source.replace("6 * 7", answer)
        nbformat.write(nb, subs / student / f"{NEW}.ipynb")
    out = tmp_path / "out"
    gradebook = tmp_path / "gradebook.db"
    code = main(["grade", NEW, str(subs), "--out", str(out), "--gradebook", str(gradebook),
                 "--profile", "reduced"])
    assert code == 0
    results = {s: json.loads((out / s / "results.json").read_text()) for s in ("reference", "wrong")}
    assert (results["reference"]["score"], results["reference"]["max_score"]) == (total, total)
    assert results["wrong"]["score"] == total - EXAMPLE_POINTS
