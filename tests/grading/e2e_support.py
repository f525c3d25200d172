"""Plain helpers for the grading tests (fixtures that use them are in conftest.py).

Test modules import these from here, never from ``conftest``: with several conftest.py
files on sys.path, ``import conftest`` finds whichever was imported first."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from autograder.course.config import Course, load_course

REPO = Path(__file__).resolve().parents[2]
E2E_SEED = 1  # grade with the first calibration seed: the reference then reproduces its key run


def open_dir(prefix: str) -> Path:
    """A temp folder other uids can traverse (the sandbox and the checker read from it)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def e2e_course(root: Path, **limits: float) -> Course:
    """The course config for end-to-end runs: reduced-profile-friendly limits, two slots."""
    course = load_course(root)
    c = course.config
    new_limits = dataclasses.replace(
        c.limits, **{"cell_timeout_s": 120, "notebook_budget_s": 600, "memory_mb": 4096, **limits})
    return Course(root=root, config=dataclasses.replace(
        c,
        limits=new_limits,
        grading=dataclasses.replace(c.grading, seed=E2E_SEED, concurrency=2,
                                    answer_key_dir=str(root / "keys")),
        assignments=(dataclasses.replace(c.assignments[0], accuracy_margin=0.3,
                                         calibration_seeds=(E2E_SEED, 2)),
                     *c.assignments[1:]),
    ))


SMALL_LIMITS = {
    "cell_timeout_s": 3,
    "notebook_budget_s": 60,
    "memory_mb": 400,
    "max_processes": 64,
    "output_bytes": 20_000,
    "disk_mb": 64,
    "file_size_mb": 32,
    "export_mb": 64,
}


def course_with(base: Course, **limits: float) -> Course:
    """The real course config with small limits (and any overrides) for tests."""
    config = base.config
    new_limits = dataclasses.replace(config.limits, **{**SMALL_LIMITS, **limits})
    return Course(root=base.root, config=dataclasses.replace(config, limits=new_limits))
