"""The second assignment, param_counting: released like the first, with nothing it does not
need (no images, no weights), and its points, items and rubric agreeing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder.course.config import Course, check_config, load_course
from autograder.course.consistency import read_grade_cells, rubric_items
from autograder.course.release import TERMS_ID, build_release, check_release

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "param_counting"


@pytest.fixture(scope="module")
def course() -> Course:
    return load_course(REPO)


@pytest.fixture(scope="module")
def released(course: Course, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release") / ASSIGNMENT
    build_release(course, ASSIGNMENT, out_dir=out)
    return out


@pytest.mark.parametrize("assignment_id", ["cnn_transfer", "param_counting"])
def test_every_committed_release_is_fresh(course: Course, assignment_id: str) -> None:
    """Is each assignment's committed release/ what its source and the config produce today?"""
    assert assignment_id in [a.assignment_id for a in course.config.assignments]
    assert check_release(course, assignment_id).stale == ()


def test_the_course_lists_both_assignments_and_checks_clean(course: Course) -> None:
    assert [a.assignment_id for a in course.config.assignments] == ["cnn_transfer", ASSIGNMENT]
    assert check_config(course) == []


def test_the_release_ships_no_data_and_no_weights_settings_it_needs(released: Path) -> None:
    """Does a release of an assignment without images hold only the notebook, the helpers and
    settings.json (no data/ folder, so nothing of any split)?"""
    files = sorted(str(p.relative_to(released)) for p in released.rglob("*") if p.is_file())
    assert files == ["course_helpers.py", "param_counting.ipynb", "settings.json"]
    assert json.loads((released / "settings.json").read_text())["assignment_id"] == ASSIGNMENT


def test_the_release_clears_solutions_and_hidden_tests(course: Course, released: Path) -> None:
    """Is every line of every solution and hidden-test region gone from the student version?"""
    source = nbformat.read(course.source_dir(ASSIGNMENT) / "param_counting.ipynb", as_version=4)
    student = "\n".join(c.source for c in nbformat.read(
        released / "param_counting.ipynb", as_version=4).cells if c.cell_type == "code")
    regions = r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1"
    text = "\n".join(c.source for c in source.cells)
    public = {line.strip() for line in re.sub(regions, "", text, flags=re.S).splitlines()}
    secret = [line.strip() for _, block in re.findall(regions, text, re.S)
              for line in block.splitlines() if len(line.strip()) > 12
              and line.strip() not in public]
    assert secret, "the source notebook has solutions to hide"
    leaked = [line for line in secret if line in student]
    assert leaked == []


def test_points_items_and_rubric_tests_are_one_list(course: Course, released: Path) -> None:
    """Are the notebook's graded cells, the rubric's test_<item> functions and the points the
    course loads the same items, and does the released terms cell state their total?"""
    cells, problems = read_grade_cells(course.source_dir(ASSIGNMENT) / "param_counting.ipynb")
    assert problems == []
    assert set(cells) == set(rubric_items(course.rubric_dir(ASSIGNMENT)))
    assert course.config.assignment(ASSIGNMENT).points == cells
    nb = nbformat.read(released / "param_counting.ipynb", as_version=4)
    terms = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == TERMS_ID)
    assert f"worth **{sum(cells.values()):g} points**" in terms.source
    for item, value in cells.items():
        assert re.search(rf"`{item}` \| {value:g} \|", terms.source), item


def test_the_checks_judge_models_from_files_not_printed_text(course: Course) -> None:
    """Does no rubric test of param_counting read a summary's text (it reads the answers and
    the saved models only)?"""
    for path in course.rubric_dir(ASSIGNMENT).glob("*.py"):
        text = path.read_text()
        assert ".summary(" not in text and "print_fn" not in text, path.name
