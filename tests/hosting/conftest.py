"""The session's local hub: up once for every hub test (reduced profile, stand-in weights), every
assignment released to the exchange, down at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hubclient

from autograder.course.config import Course, load_course  # noqa: E402
from autograder.hosting import accounts  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEST_ENV = {"COURSE_PROFILE": "reduced", "COURSE_WEIGHTS_MODE": "stand-in"}
ARTIFACTS = REPO / "tests" / "artifacts"


@dataclass(frozen=True)
class RunningHub:
    course: Course
    url: str
    password: str
    instructor: str
    students: tuple[str, ...]
    service_path: str


def _missing_for_hub() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (creates Unix users)")
    if not (REPO / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        missing.append("node_modules/.bin/configurable-http-proxy (run scripts/bootstrap.sh)")
    if shutil.which("useradd") is None:
        missing.append("useradd")
    return missing


def _course(*args: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.prefix + "/bin/course", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s, env={**os.environ, **TEST_ENV, "COURSE_ROOT": str(REPO)})


def ensure_answer_keys(course: Course) -> None:
    """Grading needs a calibrated key per assignment for (reduced, stand-in), or (reduced, none)
    for one without a backbone; calibrate once (one seed) where missing."""
    from autograder.grading.answer_key import key_path
    from autograder.grading.pipeline import NO_WEIGHTS

    for assignment in course.config.assignments:
        mode = TEST_ENV["COURSE_WEIGHTS_MODE"] if assignment.uses_backbone else NO_WEIGHTS
        key = key_path(course.root, course.config.grading.answer_key_dir, assignment.assignment_id,
                       TEST_ENV["COURSE_PROFILE"], mode)
        if key.is_file():
            continue
        weights = ["--weights-mode", mode] if assignment.uses_backbone else []
        done = _course("calibrate", assignment.assignment_id, "--profile", "reduced", *weights, "--seeds", "1")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _forget_earlier_runs(course: Course) -> None:
    """Start from an empty exchange, queue and student folders (earlier sessions leave them)."""
    h = course.config.hub
    exchange = Path(h.exchange_dir) / course.config.course_id
    for folder in (exchange / "inbound", exchange / "feedback"):
        if folder.is_dir():
            for entry in folder.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.rmtree(course.path(h.state_dir) / "service", ignore_errors=True)
    for student in h.students:
        account = accounts.lookup_account(student)
        if account is None:
            continue
        home = account.home
        for leftover in (*(home / a.assignment_id for a in course.config.assignments),
                         home / ".local/share/jupyter/nbgrader_cache", home / ".jupyter/lab/workspaces"):
            shutil.rmtree(leftover, ignore_errors=True)


@pytest.fixture(scope="session")
def hub() -> Iterator[RunningHub]:
    missing = _missing_for_hub()
    if missing:
        pytest.skip("cannot run a local hub here: needs " + ", ".join(missing))
    course = load_course(REPO)
    ensure_answer_keys(course)
    _course("hub", "down")
    _forget_earlier_runs(course)
    up = _course("hub", "up", timeout_s=120)
    assert up.returncode == 0, up.stdout + up.stderr
    for assignment in course.config.assignments:  # every assignment is handed out
        release = _course("hub", "release", assignment.assignment_id, timeout_s=300)
        assert release.returncode == 0, release.stdout + release.stderr
    h = course.config.hub
    try:
        yield RunningHub(course=course, url=f"http://{h.ip}:{h.port}", password=h.demo_password,
                         instructor=h.instructor, students=h.students,
                         service_path=f"/services/{h.service_name}/")
    finally:
        down = _course("hub", "down", timeout_s=120)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
