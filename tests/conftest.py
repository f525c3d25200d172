"""Session set-up shared by every test folder.

The generated dataset is not committed (only its manifest is): a fresh clone builds it
once here, deterministically, so the release check, grading and the hub find the
student and grading splits where course_config.py says they are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.course.config import load_course
from autograder.course.datasets import build_dataset, verify_dataset
from autograder.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def repository_dataset() -> None:
    course = load_course(REPO)
    try:
        verify_dataset(course)
    except DatasetError:
        build_dataset(course)
        verify_dataset(course)
