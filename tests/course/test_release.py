"""The release: nbgrader's student version, with helpers, settings and data, and nothing secret."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.cli import main
from autograder.course.config import Course, load_course
from autograder.course.datasets import build_dataset, grading_split_dir, student_splits_dir
from autograder.course.release import (
    build_release,
    check_release,
    release_assignment,
    TERMS_ID,
    check_points,
    settings_payload,
)
from autograder.errors import ReleaseError

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "cnn_transfer"


def _ensure_dataset(course: Course) -> None:
    if not (student_splits_dir(course) / "train").is_dir() or not grading_split_dir(course).is_dir():
        build_dataset(course)


def _regions(source: str, begin: str, end: str) -> list[str]:
    """Lines inside ``### BEGIN <x>`` / ``### END <x>`` regions, stripped, long enough to be telling."""
    lines: list[str] = []
    for block in re.findall(rf"### {begin}\n(.*?)### {end}", source, re.DOTALL):
        lines += [line.strip() for line in block.splitlines() if len(line.strip()) > 12]
    return lines


@pytest.fixture(scope="module")
def course() -> Course:
    course = load_course(REPO)
    _ensure_dataset(course)
    return course


@pytest.fixture(scope="module")
def released(course: Course, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh release built into a temporary folder (the committed one is checked separately)."""
    out = tmp_path_factory.mktemp("release") / ASSIGNMENT
    build_release(course, ASSIGNMENT, out_dir=out)
    return out


@pytest.fixture(scope="module")
def source_nb(course: Course) -> nbformat.NotebookNode:
    return nbformat.read(course.source_dir(ASSIGNMENT) / "cnn_transfer.ipynb", as_version=4)


def _public_lines(nb: nbformat.NotebookNode) -> set[str]:
    """Stripped lines the student is meant to see: everything outside the secret regions."""
    text = "\n".join(cell.source for cell in nb.cells)
    for begin, end in (("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")):
        text = re.sub(rf"### {begin}\n.*?### {end}", "", text, flags=re.DOTALL)
    return {line.strip() for line in text.splitlines()}


def _secret_lines(nb: nbformat.NotebookNode, begin: str, end: str) -> list[str]:
    public = _public_lines(nb)
    return [line for cell in nb.cells if cell.cell_type == "code"
            for line in _regions(cell.source, begin, end) if line not in public]


def _texts(folder: Path) -> dict[str, str]:
    """Every released text file; for the notebook, its code cells (the prose is public by design)."""
    texts = {}
    for p in folder.rglob("*"):
        if p.suffix == ".ipynb":
            nb = nbformat.read(p, as_version=4)
            texts[str(p.relative_to(folder))] = "\n".join(
                c.source for c in nb.cells if c.cell_type == "code")
        elif p.is_file() and p.suffix in (".py", ".json", ".md", ".txt"):
            texts[str(p.relative_to(folder))] = p.read_text()
    return texts


def test_release_has_the_promised_layout(released: Path) -> None:
    """Does the release hold the notebook, helpers, settings and the three student splits?"""
    assert (released / "cnn_transfer.ipynb").is_file()
    assert (released / "course_helpers.py").is_file()
    assert (released / "settings.json").is_file()
    for split in ("train", "validation", "test"):
        for cls in ("handbags", "shoes"):
            assert any((released / "data" / split / cls).glob("*.jpg")), (split, cls)


def test_release_has_no_solution_code(released: Path, source_nb: nbformat.NotebookNode) -> None:
    """Is every line of every solution region absent from every released text file?"""
    solution_lines = _secret_lines(source_nb, "BEGIN SOLUTION", "END SOLUTION")
    assert len(solution_lines) > 20  # the regions were found at all
    for name, text in _texts(released).items():
        assert "BEGIN SOLUTION" not in text, name
        leaked = [line for line in solution_lines if line in text]
        assert not leaked, f"{name} leaks solution lines: {leaked[:3]}"


def test_release_has_no_hidden_tests(released: Path, source_nb: nbformat.NotebookNode) -> None:
    """Are the hidden test regions and their asserts gone, while the public checks stay?"""
    hidden = _secret_lines(source_nb, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    assert len(hidden) > 20
    nb_text = (released / "cnn_transfer.ipynb").read_text()
    assert "HIDDEN TESTS" not in nb_text
    for name, text in _texts(released).items():
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{name} leaks hidden tests: {leaked[:3]}"
    checks = [c.source for c in nbformat.reads(nb_text, as_version=4).cells
              if c.cell_type == "code" and c.source.startswith("course_helpers.check(")]
    assert len(checks) == len(load_course(REPO).config.assignment(ASSIGNMENT).points)


def test_release_has_nothing_of_the_grading_split(course: Course, released: Path) -> None:
    """No folder named like the grading split, no path to it, no file with a grading image's hash."""
    for path in released.rglob("*"):
        assert not {"hidden", "grading"} & set(path.relative_to(released).parts), path
    grading = grading_split_dir(course)
    secret_hashes = {hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in grading.rglob("*") if p.is_file()}
    assert secret_hashes
    shipped = {hashlib.sha256(p.read_bytes()).hexdigest() for p in released.rglob("*") if p.is_file()}
    assert not secret_hashes & shipped
    for name, text in _texts(released).items():
        assert str(grading) not in text and "datasets/hidden" not in text, name


def test_settings_come_from_course_config(course: Course, released: Path) -> None:
    """Is settings.json exactly what course_config.py says (sizes, profiles, weights)?"""
    shipped = json.loads((released / "settings.json").read_text())
    assignment = course.config.assignment(ASSIGNMENT)
    assert shipped == settings_payload(course, assignment)
    assert shipped["profiles"]["full"]["image_size_px"] == 224
    assert shipped["weights"]["md5"] == course.config.weights.md5
    assert shipped["classes"] == list(course.config.dataset.classes)


def test_points_are_the_source_cells(course: Course, released: Path,
                                     source_nb: nbformat.NotebookNode) -> None:
    """Does every autograded test cell keep its points from the source notebook, unchanged,
    and are those the points the kit grades with?"""
    def points(nb: nbformat.NotebookNode) -> dict:
        return {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"]
                for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}

    shipped = points(nbformat.read(released / "cnn_transfer.ipynb", as_version=4))
    assert shipped == points(source_nb)
    assert shipped == course.config.assignment(ASSIGNMENT).points


def _with_cell(nb: nbformat.NotebookNode, item: str, **nbgrader) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose cell ``item`` has these nbgrader metadata values (None deletes)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == item:
            for key, value in nbgrader.items():
                if value is None:
                    meta.pop(key)
                else:
                    meta[key] = value
    return nb


def test_release_refuses_cells_the_rubric_or_the_points_do_not_cover(
    course: Course, source_nb: nbformat.NotebookNode
) -> None:
    """Is a test cell without positive points, a rubric test without a cell, or a cell without a
    rubric test a ReleaseError naming the notebook and the item, and the real notebook fine?"""
    assignment = course.config.assignment(ASSIGNMENT)
    rubric = course.rubric_dir(ASSIGNMENT)
    assert check_points(source_nb, assignment, rubric_dir=rubric) == assignment.points
    item = list(assignment.points)[-1]
    for broken, said in [(_with_cell(source_nb, item, points=0), f"({item}): 0 points"),
                         (_with_cell(source_nb, item, points=None), "no numeric points"),
                         (_with_cell(source_nb, item, grade=False), f"test_{item} "),
                         (_with_cell(source_nb, item, grade_id="q9_extra"), "'q9_extra' has no "
                                                                           "rubric test")]:
        with pytest.raises(ReleaseError) as info:
            check_points(broken, assignment, rubric_dir=rubric)
        assert assignment.notebook in info.value.message and said in info.value.message, \
            info.value.message


def _terms_cells(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(i, c) for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id") == TERMS_ID]


def test_the_notebook_states_each_items_points_and_the_limits(course: Course,
                                                             released: Path) -> None:
    """Does the student notebook say, near the top and once, what each graded item is worth and
    the per-cell, whole-notebook and memory limits the grader applies, in a locked cell that
    nbgrader's own validator accepts?"""
    from nbgrader.preprocessors import CheckCellMetadata

    nb = nbformat.read(released / "cnn_transfer.ipynb", as_version=4)
    [(index, cell)] = _terms_cells(nb)
    assert index == 1 and cell.cell_type == "markdown" and cell.metadata.nbgrader["locked"]
    points = course.config.assignment(ASSIGNMENT).points
    for item, value in points.items():
        assert re.search(rf"\| `{item}` \| {value:g} \|$", cell.source, re.M), item
    assert f"**{sum(points.values()):g} points**" in cell.source
    limits = course.config.limits
    assert f"**{limits.cell_timeout_s:g} s" in cell.source
    assert f"**{limits.notebook_budget_s:g} s" in cell.source
    assert f"**{limits.memory_mb:g} MB of memory**" in cell.source
    CheckCellMetadata().preprocess(nb, {})


def test_the_stated_terms_follow_the_config_and_the_cells(scratch_course: Course) -> None:
    """After an instructor changes a limit in course_config.py and a question's points in the
    source notebook, does the next release state the new numbers (and not the old), once, and
    stay fresh on a second release?"""
    root = scratch_course.root
    old_limits = scratch_course.config.limits
    new = {"cell_timeout_s": old_limits.cell_timeout_s + 17,
           "notebook_budget_s": old_limits.notebook_budget_s + 333,
           "memory_mb": old_limits.memory_mb + 1000}
    config = root / "course_config.py"
    config.write_text(config.read_text() + f"""
import dataclasses as _dc
COURSE = _dc.replace(COURSE, limits=_dc.replace(COURSE.limits, **{new!r}))
""")
    assignment = scratch_course.config.assignment(ASSIGNMENT)
    item, value = list(assignment.points.items())[-1]
    path = scratch_course.source_dir(ASSIGNMENT) / assignment.notebook
    source = nbformat.read(path, as_version=4)
    source = _with_cell(source, item, points=value + 6)
    # an instructor pasted an old terms cell into the source: it is replaced, not repeated
    source.cells.insert(3, nbformat.v4.new_markdown_cell("stale: 1 s per cell", id="old-terms",
                                                         metadata={"nbgrader": {
                                                             "grade": False, "locked": True,
                                                             "grade_id": TERMS_ID,
                                                             "solution": False,
                                                             "schema_version": 3}}))
    nbformat.write(source, path)
    course = load_course(root)
    assert course.config.limits.memory_mb == new["memory_mb"]

    release_assignment(course, ASSIGNMENT)
    nb = nbformat.read(course.release_dir(ASSIGNMENT) / assignment.notebook, as_version=4)
    [(_, cell)] = _terms_cells(nb)
    text = cell.source
    assert f"**{new['cell_timeout_s']:g} s" in text and f"**{old_limits.cell_timeout_s:g} s" not in text
    assert f"**{new['notebook_budget_s']:g} s" in text
    assert f"**{new['memory_mb']:g} MB of memory**" in text
    assert f"| `{item}` | {value + 6:g} |" in text
    assert f"**{sum(assignment.points.values()) + 6:g} points**" in text
    assert "stale" not in text
    assert check_release(course, ASSIGNMENT).stale == ()  # a second build gives the same bytes


def test_nbgrader_accepts_the_source(source_nb: nbformat.NotebookNode) -> None:
    """Does nbgrader's own metadata validator accept the source notebook, ids unique?"""
    from nbgrader.preprocessors import CheckCellMetadata

    CheckCellMetadata().preprocess(source_nb, {})
    ids = [c.metadata.nbgrader["grade_id"] for c in source_nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert meta["locked"] and "### BEGIN HIDDEN TESTS" in cell.source, meta["grade_id"]
            assert cell.source.startswith(f'course_helpers.check("{meta["grade_id"]}")')


def test_release_is_deterministic(course: Course, released: Path, tmp_path: Path) -> None:
    """Do two builds from the same source give byte-identical trees?"""
    again = tmp_path / ASSIGNMENT
    build_release(course, ASSIGNMENT, out_dir=again)
    for path in released.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(released)).read_bytes(), path


@pytest.fixture
def scratch_course(course: Course, tmp_path: Path) -> Course:
    """A copy of the course root (config, source) sharing the built dataset, so release/ may change."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "source", root / "source",
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    (root / "datasets").mkdir()
    for sub in ("build", "hidden"):
        (root / "datasets" / sub).symlink_to(course.path(f"datasets/{sub}"))
    return load_course(root)


def test_check_detects_a_modified_release(scratch_course: Course) -> None:
    """Does --check list a changed, a missing and an extra file, and pass when fresh?"""
    release_assignment(scratch_course, ASSIGNMENT)
    assert check_release(scratch_course, ASSIGNMENT).stale == ()
    dest = scratch_course.release_dir(ASSIGNMENT)
    with open(dest / "course_helpers.py", "a") as f:
        f.write("# edited by hand\n")
    (dest / "data" / "train" / "shoes" / "extra.jpg").write_bytes(b"x")
    first = sorted((dest / "data" / "test" / "handbags").glob("*.jpg"))[0]
    first.unlink()
    stale = check_release(scratch_course, ASSIGNMENT).stale
    assert set(stale) == {"course_helpers.py", "data/train/shoes/extra.jpg",
                          str(first.relative_to(dest))}


def test_cli_release_check_fails_on_stale(
    scratch_course: Course, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Does `course release --check` exit non-zero naming the stale file and the fix?"""
    monkeypatch.setenv("COURSE_ROOT", str(scratch_course.root))
    assert main(["release", ASSIGNMENT]) == 0
    assert main(["release", ASSIGNMENT, "--check"]) == 0
    (scratch_course.release_dir(ASSIGNMENT) / "settings.json").write_text("{}\n")
    assert main(["release", ASSIGNMENT, "--check"]) == 2
    err = capsys.readouterr().err
    assert "settings.json" in err and f"course release {ASSIGNMENT}" in err


def test_committed_release_is_fresh(course: Course) -> None:
    """Is the committed release/ what the source and config produce today?"""
    if not course.release_dir(ASSIGNMENT).is_dir():
        pytest.skip("release/ not generated in this checkout")
    assert check_release(course, ASSIGNMENT).stale == ()


def _break_a_solution_region(course: Course) -> str:
    """Drop the END SOLUTION marker of the first solution cell of ``course``'s source notebook,
    as an instructor editing by hand might; returns that cell's grade_id."""
    path = course.source_dir(ASSIGNMENT) / course.config.assignment(ASSIGNMENT).notebook
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and "### END SOLUTION" in cell.source:
            cell.source = cell.source.replace("### END SOLUTION", "", 1)
            nbformat.write(nb, path)
            return meta["grade_id"]
    raise AssertionError("the source notebook has no solution cell with an END SOLUTION marker")


def test_a_missing_end_marker_names_the_notebook_and_the_cell_and_what_to_do(
    scratch_course: Course, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Is an end-solution marker missing from the source (a really broken copy of the real
    notebook) a ReleaseError naming the notebook, the cell (its grade_id) and the marker, with
    the command to run once fixed, and nothing released?"""
    grade_id = _break_a_solution_region(scratch_course)
    notebook = scratch_course.config.assignment(ASSIGNMENT).notebook
    out = scratch_course.root / "out"
    with pytest.raises(ReleaseError) as info:
        build_release(scratch_course, ASSIGNMENT, out_dir=out)
    assert notebook in info.value.message and grade_id in info.value.message, info.value.message
    assert "END SOLUTION" in info.value.message, info.value.message
    assert "course release" in (info.value.hint or "")
    assert not out.exists()
    # and through the command: exit 2, the same on stderr, release/ untouched
    monkeypatch.setenv("COURSE_ROOT", str(scratch_course.root))
    assert main(["release", ASSIGNMENT]) == 2
    err = capsys.readouterr().err
    assert grade_id in err and "END SOLUTION" in err and "course release" in err
    assert not scratch_course.release_dir(ASSIGNMENT).exists()


def test_nbgrader_failure_is_a_release_error_carrying_its_reason(scratch_course: Course) -> None:
    """Does a source that only nbgrader refuses (a solution region in a cell not marked as a
    solution) become a ReleaseError carrying nbgrader's own reason and the command to rerun?"""
    path = scratch_course.source_dir(ASSIGNMENT) / scratch_course.config.assignment(ASSIGNMENT).notebook
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"))
    nbformat.write(nb, path)
    out = scratch_course.root / "out"
    with pytest.raises(ReleaseError) as info:
        build_release(scratch_course, ASSIGNMENT, out_dir=out)
    assert f"nbgrader generate_assignment failed for {ASSIGNMENT}" in info.value.message
    assert "Solution region detected in a non-solution cell" in info.value.message  # nbgrader's words
    assert "run `course release` again" in (info.value.hint or "")
    assert not out.exists()
