"""Release an assignment: source notebook -> ``release/<id>/``, the folder students get.

The steps, in order (:data:`RELEASE_STEPS`):

1. read the source notebook and check its autograded test cells: their nbgrader
   points are the only points (a cell without positive points, a cell without a
   rubric test, or a rubric test without a cell is an error; see
   :mod:`autograder.course.consistency`);
2. write the grading terms near the top of the notebook: a locked markdown cell, generated
   (never typed in) from those points and the limits in ``course_config.py``, replacing
   any earlier one, so the student reads what the grader will apply;
3. stage a throw-away nbgrader course root holding that notebook, the shipped
   files of ``source/<id>/`` and a ``settings.json`` derived from the config;
4. run nbgrader's ``generate_assignment`` there (solutions and hidden tests are
   cleared, cells locked and check-summed, metadata validated);
5. strip what changes from run to run, add ``data/`` copied from the student
   splits (never the grading split; only for an assignment with ``uses_images``) and
   compare with or replace ``release/<id>/``.

This is the only module that touches nbgrader's converters, and it does so in a
subprocess (``python -m nbgrader``) so nbgrader's global application state and
logging never leak into the kit. What it deliberately does not do: execute the
notebook (tests and ``course calibrate`` do), or publish to the exchange (the
hosting side does that from ``release/``).
"""

from __future__ import annotations

import copy
import filecmp
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from autograder.course.config import RELEASE_DIR, SOURCE_DIR, Course
from autograder.course.consistency import grade_cells, item_problems
from autograder.course.settings import Assignment
from autograder.errors import ReleaseError

RELEASE_STEPS = (
    "check the test cells' points and grade_ids against the rubric",
    "write the grading terms cell (points per question, limits) near the top",
    "stage a temporary nbgrader course root with settings.json",
    "nbgrader generate_assignment (clear solutions and hidden tests, lock cells)",
    "strip volatile metadata, copy the student splits into data/",
    "compare with or replace release/<id>/",
)
SETTINGS_FILE = "settings.json"
DATA_DIR = "data"
STUDENT_SPLITS = ("train", "validation", "test")
# Never shipped from source/<id>/: generated, private, or machine-specific.
_NOT_SHIPPED = {SETTINGS_FILE, DATA_DIR, "__pycache__", ".ipynb_checkpoints"}
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
# Notebook-level metadata that records who ran what, not what the notebook is.
_VOLATILE_NB_METADATA = ("widgets", "toc", "varInspector", "vscode", "colab", "papermill")

Runner = Callable[[Sequence[str], Path], subprocess.CompletedProcess]
"""Runs ``argv`` with a working directory; tests may pass a recording fake."""


@dataclass(frozen=True)
class ReleaseReport:
    """What a release produced (or, for ``--check``, what differs)."""

    assignment_id: str
    release_dir: Path
    files: tuple[str, ...]
    """Every file of the release, relative to ``release_dir``, sorted."""
    stale: tuple[str, ...] = field(default_factory=tuple)
    """Files that differ, are missing or are extra (``check_release`` only)."""


def settings_payload(course: Course, assignment: Assignment) -> dict[str, Any]:
    """The ``settings.json`` that ``course_helpers.py`` reads, derived from course_config.py."""
    from autograder.course.standin import STAND_IN_FILE

    c = course.config
    return {
        "course_id": c.course_id,
        "assignment_id": assignment.assignment_id,
        "classes": list(c.dataset.classes),
        "dataset_image_size_px": c.dataset.image_size_px,
        "batch_size": c.dataset.batch_size,
        "seed": c.grading.seed,
        "default_profile": c.default_profile,
        "profiles": {
            name: {
                "image_size_px": p.image_size_px,
                "cnn_epochs": p.cnn_epochs,
                "head_epochs": p.head_epochs,
                "finetune_epochs": p.finetune_epochs,
            }
            for name, p in sorted(c.profiles.items())
        },
        "weights": {
            "mode": c.weights.mode,
            "cache_dir": c.weights.cache_dir,
            "file_name": c.weights.file_name,
            "md5": c.weights.md5,
            "standin_file_name": STAND_IN_FILE,
        },
    }


def render_settings(course: Course, assignment: Assignment) -> str:
    """``settings.json`` as text: sorted keys, fixed indent, trailing newline (diff-stable)."""
    return json.dumps(settings_payload(course, assignment), indent=2, sort_keys=True) + "\n"


def check_points(nb: nbformat.NotebookNode, assignment: Assignment, *, rubric_dir: Path
                 ) -> dict[str, float]:
    """The notebook's own ``grade_id -> points``, released as they are.

    Raises :class:`ReleaseError` naming every autograded cell without positive points or
    without a rubric test, and every rubric test without a cell.
    """
    cells, problems = grade_cells(nb, name=assignment.notebook)
    problems += item_problems(assignment.assignment_id, cells=cells, notebook=assignment.notebook,
                              rubric_dir=rubric_dir)
    if problems:
        raise ReleaseError(
            f"{assignment.notebook}: " + "; ".join(problems),
            hint="points live in the source notebook's nbgrader metadata: fix the cells "
                 "named above, then run `course config check` and `course release` again")
    return cells


TERMS_ID = "grading_terms"
"""grade_id (and cell id) of the generated cell that states points and limits."""
_TERMS = """### Points and limits

This notebook is worth **{total} points** in all. Each graded item is the check cell
`course_helpers.check("<item>")` after a question:

| part | question | item | points |
|---|---|---|---:|
{rows}

When you submit, the grader runs your notebook from the top in a fresh kernel, with
these limits:

- **{cell} per cell**: a cell that runs longer is interrupted, and grading goes on with
  the next cell;
- **{budget} for the whole notebook**: when that time runs out the kernel is stopped,
  and no further cell runs;
- **{memory_mb:g} MB of memory** for everything the notebook runs, together: past it the
  kernel is stopped.

An item whose answer or model was never produced (its cell stopped, or was not reached)
gets no points. (Written by `course release` from the course settings.)"""


def _duration(seconds: float) -> str:
    """``240 s (4 min)``: seconds as the grader counts them, minutes for the reader."""
    return f"{seconds:g} s" + (f" ({seconds / 60:g} min)" if seconds >= 60 else "")


def grading_terms(course: Course, points: dict[str, float], *, notebook: Path) -> str:
    """The markdown stating each item's points (in notebook order, labelled as the feedback
    labels them) and the per-cell, whole-notebook and memory limits of ``course_config.py``."""
    from autograder.grading.layout import item_labels  # the feedback page's names for items

    labels = item_labels(notebook)
    rows = []
    for item, value in points.items():
        label = labels.get(item)
        rows.append(f"| {label.part if label else ''} | {label.question if label else ''} "
                    f"| `{item}` | {value:g} |")
    limits = course.config.limits
    return _TERMS.format(total=f"{sum(points.values()):g}", rows="\n".join(rows),
                         cell=_duration(limits.cell_timeout_s),
                         budget=_duration(limits.notebook_budget_s), memory_mb=limits.memory_mb)


def with_grading_terms(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the grading terms cell holding ``text``: in place of an earlier
    one (same grade_id), else right after the first cell (the title and introduction)."""
    nb = copy.deepcopy(nb)
    cell = nbformat.v4.new_markdown_cell(text, id=TERMS_ID.replace("_", "-"))
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": TERMS_ID, "locked": True,
                                 "schema_version": 3, "solution": False, "task": False}
    old = [i for i, c in enumerate(nb.cells)
           if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == TERMS_ID]
    for index in reversed(old):
        del nb.cells[index]
    nb.cells.insert(old[0] if old else min(1, len(nb.cells)), cell)
    return nb


_MARKER = re.compile(r"^\s*#+\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", re.MULTILINE)


def check_markers(nb: nbformat.NotebookNode, notebook: str) -> None:
    """Every ``### BEGIN SOLUTION`` / ``### BEGIN HIDDEN TESTS`` closed by its END in the
    same cell, in order; otherwise a :class:`ReleaseError` naming the notebook, each cell
    (number and grade_id) and the line to add. (nbgrader's own error names neither.)"""
    problems = []
    for number, cell in enumerate(nb.cells, 1):
        open_regions: list[str] = []
        where = f"cell {number}"
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            where += f" ({grade_id})"
        for match in _MARKER.finditer("".join(cell.get("source", ""))):
            verb, region = match.groups()
            if verb == "BEGIN":
                open_regions.append(region)
            elif open_regions and open_regions[-1] == region:
                open_regions.pop()
            else:
                problems.append(f"{where}: '### END {region}' without a matching "
                                f"'### BEGIN {region}' before it")
        problems += [f"{where}: '### BEGIN {region}' is never closed: add '### END {region}'"
                     for region in reversed(open_regions)]
    if problems:
        raise ReleaseError(f"{notebook}: " + "; ".join(problems),
                           hint="fix the markers in the source notebook, then run "
                                "`course release` again")


def build_release(
    course: Course, assignment_id: str, *, out_dir: Path, runner: Runner | None = None
) -> ReleaseReport:
    """Build the release of ``assignment_id`` into ``out_dir`` (which must not exist yet)."""
    assignment = course.config.assignment(assignment_id)
    source = course.source_dir(assignment_id)
    notebook = source / assignment.notebook
    if not notebook.is_file():
        raise ReleaseError(f"{notebook} does not exist",
                           hint="write the source notebook, or fix Assignment.notebook")
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # any parse failure of the instructor's file
        raise ReleaseError(f"{notebook} is not a readable notebook: {exc}",
                           hint="open it in Jupyter and save it again") from exc
    check_markers(nb, assignment.notebook)
    points = check_points(nb, assignment, rubric_dir=course.rubric_dir(assignment_id))
    nb = with_grading_terms(nb, grading_terms(course, points, notebook=notebook))

    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        root = Path(tmp)
        staged = root / SOURCE_DIR / assignment_id
        staged.mkdir(parents=True)
        for item in sorted(source.iterdir()):
            if item.name in _NOT_SHIPPED or item.name == assignment.notebook:
                continue
            if item.is_dir():
                shutil.copytree(item, staged / item.name,
                                ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
            else:
                shutil.copy2(item, staged / item.name)
        nbformat.write(nb, staged / assignment.notebook)
        (staged / SETTINGS_FILE).write_text(render_settings(course, assignment))

        _generate_assignment(course, root, assignment_id, runner=runner or _run)

        generated = root / RELEASE_DIR / assignment_id
        student_nb = generated / assignment.notebook
        if not student_nb.is_file():
            raise ReleaseError(f"nbgrader wrote no {assignment.notebook}",
                               hint="run `nbgrader generate_assignment` by hand to see why")
        _normalise_notebook(student_nb)
        out_dir = Path(out_dir)
        shutil.copytree(generated, out_dir)
    if assignment.uses_images:
        _copy_student_splits(course, out_dir / DATA_DIR)
    files = tuple(sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file()))
    return ReleaseReport(assignment_id=assignment_id, release_dir=out_dir, files=files)


def release_assignment(course: Course, assignment_id: str, *, runner: Runner | None = None
                       ) -> ReleaseReport:
    """Regenerate ``release/<id>/`` and ``source/<id>/settings.json`` in place."""
    assignment = course.config.assignment(assignment_id)
    dest = course.release_dir(assignment_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".release-", dir=dest.parent) as tmp:
        report = build_release(course, assignment_id, out_dir=Path(tmp) / "new", runner=runner)
        if dest.exists():
            shutil.rmtree(dest)
        # Same file system, so the new tree appears under its real name in one rename.
        Path(tmp, "new").rename(dest)
    # The source notebook runs next to course_helpers.py too, so it needs the same settings.
    (course.source_dir(assignment_id) / SETTINGS_FILE).write_text(
        render_settings(course, assignment))
    return ReleaseReport(assignment_id=assignment_id, release_dir=dest, files=report.files)


def check_release(course: Course, assignment_id: str, *, runner: Runner | None = None
                  ) -> ReleaseReport:
    """Regenerate into a temporary folder and list every file of ``release/<id>/`` that is stale."""
    assignment = course.config.assignment(assignment_id)
    dest = course.release_dir(assignment_id)
    with tempfile.TemporaryDirectory(prefix="course-release-check-") as tmp:
        fresh = build_release(course, assignment_id, out_dir=Path(tmp) / "fresh", runner=runner)
        current = set()
        if dest.is_dir():
            current = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
        stale = set(current ^ set(fresh.files))
        for name in set(current) & set(fresh.files):
            if not filecmp.cmp(dest / name, fresh.release_dir / name, shallow=False):
                stale.add(name)
    settings = course.source_dir(assignment_id) / SETTINGS_FILE
    if not settings.is_file() or settings.read_text() != render_settings(course, assignment):
        stale.add(str(settings.relative_to(course.root)))
    return ReleaseReport(assignment_id=assignment_id, release_dir=dest, files=fresh.files,
                         stale=tuple(sorted(stale)))


def _run(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)


def _generate_assignment(course: Course, root: Path, assignment_id: str, *, runner: Runner
                         ) -> None:
    # cwd is the course root so nbgrader reads the repository's nbgrader_config.py
    # (ClearSolutions, ClearHiddenTests ...); the command line points it at the staging root.
    argv = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment_id,
            "--no-db", "--force", f"--CourseDirectory.root={root}",
            f"--CourseDirectory.course_id={course.config.course_id}"]
    result = runner(argv, course.root)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-15:])
        raise ReleaseError(
            f"nbgrader generate_assignment failed for {assignment_id}:\n{tail}",
            hint="fix the cell named above (solution markers, grade_id, duplicate ids) "
                 "and run `course release` again",
        )


def _normalise_notebook(path: Path) -> None:
    """Drop outputs, execution counts and volatile metadata so identical sources give identical bytes."""
    nb = nbformat.read(path, as_version=4)
    for key in _VOLATILE_NB_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)


def _copy_student_splits(course: Course, dest: Path) -> None:
    """Copy ``train|validation|test/<class>/`` images; refuse anything of the grading split."""
    from autograder.course.datasets import grading_split_dir, student_splits_dir

    splits = student_splits_dir(course).resolve()
    grading = grading_split_dir(course).resolve()
    for split in STUDENT_SPLITS:
        folder = splits / split
        if not folder.is_dir():
            raise ReleaseError(f"the student split {folder} does not exist",
                               hint="run `course data build` first")
        if folder == grading or grading in folder.parents or folder in grading.parents:
            raise ReleaseError(f"{folder} overlaps the grading split {grading}",
                               hint="keep the grading split outside the student splits")
        for class_name in course.config.dataset.classes:
            class_dir = folder / class_name
            if not class_dir.is_dir():
                raise ReleaseError(f"{class_dir} does not exist", hint="run `course data build`")
            target = dest / split / class_name
            target.mkdir(parents=True)
            for image in sorted(class_dir.iterdir()):
                if image.is_file() and image.suffix.lower() in _IMAGE_SUFFIXES:
                    shutil.copyfile(image, target / image.name)
