"""Fixtures for the execute/export tests: a course with small limits, a temporary
release folder, and a factory that runs a zoo notebook through the real grader."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from autograder.course.config import Course, load_course
from autograder.facts import ExecutionResult
from autograder.grading import sandbox, sandbox_users
from e2e_support import course_with

REPO = Path(__file__).resolve().parents[2]
RELEASE_GRADE_IDS = ("q1_conv_params", "q1_output_shapes", "q2_cnn_architecture")


@pytest.fixture(scope="session")
def base_course() -> Course:
    return load_course(REPO)


@pytest.fixture
def release_dir(tmp_path: Path, base_course: Course) -> Path:
    """A stand-in for release/<id>/: helpers, settings, a tiny data folder, a notebook."""
    release = tmp_path / "release"
    for split in ("train", "validation", "test"):
        for cls in ("handbags", "shoes"):
            (release / "data" / split / cls).mkdir(parents=True)
            (release / "data" / split / cls / "0.jpg").write_bytes(b"\xff\xd8\xff")
    (release / "course_helpers.py").write_text("def settings():\n    return {}\n")
    (release / "settings.json").write_text(json.dumps({"profiles": {}}))
    cells = []
    for grade_id in RELEASE_GRADE_IDS:
        cell = nbformat.v4.new_code_cell("pass")
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": True, "points": 1}
        cells.append(cell)
    assignment = base_course.config.assignments[0]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), release / assignment.notebook)
    return release


@pytest.fixture
def sandbox_ready(base_course: Course) -> None:
    """Skip (naming the missing parts) where the sandbox cannot run: not root, no bwrap..."""
    prefix = base_course.config.grading.sandbox_user_prefix
    missing = sandbox.probe_sandbox(prefix=prefix, slots=1)
    if missing:
        pytest.skip("sandbox unavailable: " + "; ".join(missing))


RunZoo = Callable[..., ExecutionResult]


@pytest.fixture
def run_zoo(tmp_path: Path, base_course: Course, release_dir: Path, sandbox_ready: None) -> RunZoo:
    """Run a notebook (cell sources or a NotebookNode) in the sandbox; limits overridable."""
    from autograder.grading.execute import ExecutionSpec, execute_submission
    from autograder.grading.submission import Submission
    import zoo

    counter = iter(range(1000))

    def run(notebook: list[str] | nbformat.NotebookNode, *, on_model=None,
            **limits: float) -> ExecutionResult:
        n = next(counter)
        nb = zoo.build(notebook) if isinstance(notebook, list) else notebook
        path = tmp_path / f"submission{n}.ipynb"
        nbformat.write(nb, path)
        course = course_with(base_course, **limits)
        spec = ExecutionSpec.from_course(course, course.config.assignments[0], profile="reduced",
                                         weights_mode="stand-in", release_dir=release_dir)
        return execute_submission(Submission.of(path, nb), spec, student=f"zoo{n}", slot=0,
                                  job_dir=tmp_path / f"job{n}", on_model=on_model)

    return run


# ---------------------------------------------------------------------------
# End-to-end grading (test_grade_*.py): one course root and one calibration per session.
# Plain helpers live in e2e_support.py, which test modules import directly.

from e2e_support import e2e_course, open_dir  # noqa: E402  (kept beside the fixtures using them)

@pytest.fixture(scope="session")
def e2e_root():
    """A course root that shares source/, release/ and datasets/ with the repository,
    with its own gradebook, answer keys and stand-in weights folder."""
    import os
    import shutil

    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root to set up uids and cgroups")
    sandbox_users.ensure_sandbox_users("course-sbx", 2)
    root = open_dir("course-e2e-")
    shutil.copy(REPO / "course_config.py", root / "course_config.py")
    for name in ("source", "release", "datasets"):
        (root / name).symlink_to(REPO / name)
    weights = root / "weights"
    weights.mkdir(mode=0o755)
    old = os.environ.get("COURSE_WEIGHTS_DIR")
    os.environ["COURSE_WEIGHTS_DIR"] = str(weights)
    yield root
    if old is None:
        os.environ.pop("COURSE_WEIGHTS_DIR", None)
    else:
        os.environ["COURSE_WEIGHTS_DIR"] = old
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def calibration_reports() -> list:
    """What ``calibrated`` reported while it ran: (monotonic time, done, total, what)."""
    return []


@pytest.fixture(scope="session")
def calibrated(e2e_root, calibration_reports):
    """The reduced-profile, stand-in answer key, calibrated from the reference solution."""
    import time

    from autograder.grading.calibrate import calibrate
    from autograder.grading.pipeline import make_context

    course = e2e_course(e2e_root)
    ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=e2e_root / "out",
                       weights_mode="stand-in", need_key=False)
    key = calibrate(ctx, seeds=course.config.assignments[0].calibration_seeds,
                    progress=lambda *report: calibration_reports.append((time.monotonic(), *report)))
    return course, key
