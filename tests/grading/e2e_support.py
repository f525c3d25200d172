"""Helpers for the end-to-end grading tests (fixtures that use them are in conftest.py)."""

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
                                         calibration_seeds=(E2E_SEED, 2)),),
    ))


