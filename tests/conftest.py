"""Session set-up shared by every test folder.

The generated dataset is not committed (only its manifest is): a fresh clone builds it
once here, deterministically, so the release check, grading and the hub find the
student and grading splits where course_config.py says they are. As root, the grading
slots' uids are created here too (what `course sandbox setup` does), before the first
test that needs them, whatever the order the tests run in; and under CI as root a skip
is a failure (see ci_strict.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ci_strict import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

from autograder.course.config import load_course
from autograder.course.datasets import build_dataset, verify_dataset
from autograder.errors import DatasetError
from autograder.grading import sandbox_users

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def repository_dataset() -> None:
    course = load_course(REPO)
    try:
        verify_dataset(course)
    except DatasetError:
        build_dataset(course)
        verify_dataset(course)


@pytest.fixture(scope="session", autouse=True)
def grading_sandbox_users() -> None:
    """As root: one unprivileged uid per grading slot (the e2e courses use two slots)."""
    if os.geteuid() != 0:
        return
    grading = load_course(REPO).config.grading
    sandbox_users.ensure_sandbox_users(grading.sandbox_user_prefix, max(grading.concurrency, 2))
