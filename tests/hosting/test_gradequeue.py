"""The grade-on-submit queue and the exchange rules, with a fake grader (no hub, no TensorFlow)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from autograder.hosting import exchange
from autograder.hosting.gradequeue import (
    DONE, FAILED, GRADING, QUEUED, REJECTED, GradeOutcome, GraderAway, GradingFailed, GradingQueue, JobStore,
    read_outcome,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another uid")
NOTEBOOK = "cnn_transfer.ipynb"
STUDENT = "nobody"  # exists on every Debian machine; stands for a student uid
SECRET = "ab" * 64


class FakeGrader:
    """Writes results.json + feedback.html like `course grade`, and records its calls."""

    def __init__(self, *, score: float = 7.0, fail: bool = False) -> None:
        self.calls: list[tuple[str, Path, str]] = []
        self.score, self.fail = score, fail

    async def __call__(self, *, assignment_id: str, notebook: Path, student: str, out_dir: Path) -> GradeOutcome:
        self.calls.append((assignment_id, notebook, student))
        if self.fail:
            raise GradingFailed("the grader crashed at /secret/path")
        folder = out_dir / student
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps({"score": self.score, "execution_time": 1.0,
                                                         "tests": [{"name": "q1", "max_score": 10}]}))
        (folder / "feedback.html").write_text(f"<p>Score {self.score:g} / 10</p>")
        return read_outcome(out_dir, student)


def _submit(inbound: Path, *, name: str, owner: str, timestamp: str = "2026-01-01 10:00:00.000000 UTC") -> Path:
    folder = inbound / f"{name}+cnn_transfer+{timestamp}+R4nd0m"
    folder.mkdir()
    (folder / NOTEBOOK).write_text("{}")
    (folder / "submission_secret.txt").write_text(SECRET)
    (folder / "timestamp.txt").write_text(timestamp)
    uid = pwd.getpwnam(owner).pw_uid
    for path in (folder, *folder.iterdir()):
        os.chown(path, uid, uid)
    os.chmod(folder, 0o777)  # as nbgrader leaves it
    return folder


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("inbound", "feedback", "work")}
    for path in paths.values():
        path.mkdir()
    return paths


def _queue(layout: dict[str, Path], grader: FakeGrader) -> GradingQueue:
    return GradingQueue(inbound=layout["inbound"], feedback_dir=layout["feedback"], work_dir=layout["work"],
                        notebooks={"cnn_transfer": NOTEBOOK}, runner=grader, feedback_gid=0,
                        store=JobStore(layout["work"] / "jobs.json"))


def test_a_submission_is_queued_graded_and_its_feedback_published(layout):
    """Does one submission go queued -> done, with feedback where `nbgrader fetch_feedback` looks?"""
    grader = FakeGrader()
    queue = _queue(layout, grader)
    folder = _submit(layout["inbound"], name=STUDENT, owner=STUDENT)
    (job,) = queue.scan()
    assert job.state == QUEUED and queue.position(job.job_id) == 1
    asyncio.run(queue.grade_next())
    assert job.state == DONE and job.score == 7.0 and job.max_score == 10
    feedback = layout["feedback"] / f"{exchange.feedback_hash(SECRET, 'cnn_transfer')}.html"
    assert "Score 7" in feedback.read_text()
    st = feedback.stat()
    assert st.st_uid == pwd.getpwnam(STUDENT).pw_uid and stat.S_IMODE(st.st_mode) == 0o440
    # graded from a private snapshot, never from the exchange copy
    assert grader.calls[0][1].is_relative_to(layout["work"])
    assert stat.S_IMODE(folder.stat().st_mode) == exchange.SUBMISSION_DIR_MODE


def test_the_feedback_name_is_nbgraders():
    """Is our hash the one nbgrader's fetch_feedback computes?"""
    from nbgrader.utils import notebook_hash

    assert exchange.feedback_hash(SECRET, "cnn_transfer") == notebook_hash(secret=SECRET, notebook_id="cnn_transfer")


def test_a_submission_made_by_someone_else_is_rejected(layout):
    """Is submitting under another student's name (nbgrader#1097) refused, with a reason?"""
    grader = FakeGrader()
    queue = _queue(layout, grader)
    _submit(layout["inbound"], name="daemon", owner=STUDENT)
    (job,) = queue.scan()
    assert job.state == REJECTED and "belongs to nobody, not to daemon" in job.message
    assert queue.pending == [] and grader.calls == []


def test_a_symlink_cannot_make_the_root_service_touch_other_files(layout, tmp_path):
    """Is a notebook that is a symbolic link (e.g. to a root-only file) refused, and the target left alone?"""
    target = tmp_path / "root-only.txt"
    target.write_text("secret")
    target.chmod(0o600)
    queue = _queue(layout, FakeGrader())
    folder = _submit(layout["inbound"], name=STUDENT, owner=STUDENT)
    (folder / NOTEBOOK).unlink()
    (folder / NOTEBOOK).symlink_to(target)
    os.lchown(folder / NOTEBOOK, pwd.getpwnam(STUDENT).pw_uid, -1)
    (job,) = queue.scan()
    assert job.state == REJECTED and "plain file" in job.message
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not any(layout["work"].rglob(NOTEBOOK))


def test_a_file_of_another_user_inside_the_submission_is_refused(layout):
    queue = _queue(layout, FakeGrader())
    folder = _submit(layout["inbound"], name=STUDENT, owner=STUDENT)
    os.chown(folder / NOTEBOOK, 0, 0)
    (job,) = queue.scan()
    assert job.state == REJECTED and f"{NOTEBOOK} belongs to root" in job.message


def test_an_unknown_assignment_is_rejected(layout):
    queue = _queue(layout, FakeGrader())
    folder = _submit(layout["inbound"], name=STUDENT, owner=STUDENT)
    folder.rename(layout["inbound"] / folder.name.replace("cnn_transfer", "other"))
    (job,) = queue.scan()
    assert job.state == REJECTED and "not an assignment" in job.message


def test_a_grader_crash_fails_the_job_without_leaking_paths_to_the_student(layout):
    queue = _queue(layout, FakeGrader(fail=True))
    _submit(layout["inbound"], name=STUDENT, owner=STUDENT)
    (job,) = queue.scan()
    asyncio.run(queue.grade_next())
    assert job.state == FAILED and "/secret/path" not in job.message and "/secret/path" in job.detail


def test_a_job_the_grading_cluster_could_not_take_waits_and_is_graded_later(layout, monkeypatch):
    """When `course grade` says its grading cluster is away (exit 75), is the job queued
    again, first in line and not failed, and graded once the cluster answers?"""
    from autograder.hosting import gradequeue

    monkeypatch.setattr(gradequeue, "RETRY_AWAY_S", 0.0)
    grader = FakeGrader()
    real = grader.__call__
    away = [True]

    async def flaky(**kwargs):
        if away.pop() if away else False:
            grader.calls.append(("away", kwargs["notebook"], kwargs["student"]))
            raise GraderAway("`course grade` exited with 75: no Dask scheduler answers")
        return await real(**kwargs)

    queue = _queue(layout, grader)
    queue.runner = flaky
    _submit(layout["inbound"], name=STUDENT, owner=STUDENT)
    (job,) = queue.scan()
    asyncio.run(queue.grade_next())
    assert job.state == QUEUED and queue.position(job.job_id) == 1 and "grading cluster" in job.message
    asyncio.run(queue.grade_next())
    assert job.state == DONE and job.attempts == 2 and job.message == "" and len(grader.calls) == 2


def test_queue_order_positions_and_regrade(layout):
    """Are jobs graded first-in first-out, and can a graded job be queued again?"""
    grader = FakeGrader()
    queue = _queue(layout, grader)
    _submit(layout["inbound"], name=STUDENT, owner=STUDENT, timestamp="2026-01-01 10:00:00.000000 UTC")
    first, = queue.scan()
    _submit(layout["inbound"], name=STUDENT, owner=STUDENT, timestamp="2026-01-01 11:00:00.000000 UTC")
    second, = queue.scan()
    assert (queue.position(first.job_id), queue.position(second.job_id)) == (1, 2)
    asyncio.run(queue.grade_next())
    assert first.state == DONE and queue.position(second.job_id) == 1
    queue.regrade(first.job_id)
    assert queue.position(first.job_id) == 2


def test_a_restarted_service_remembers_and_requeues(layout):
    """Does a new service process skip graded jobs and re-queue interrupted ones?"""
    queue = _queue(layout, FakeGrader())
    _submit(layout["inbound"], name=STUDENT, owner=STUDENT, timestamp="2026-01-01 10:00:00.000000 UTC")
    _submit(layout["inbound"], name=STUDENT, owner=STUDENT, timestamp="2026-01-01 11:00:00.000000 UTC")
    queue.scan()
    asyncio.run(queue.grade_next())
    again = _queue(layout, FakeGrader())
    assert again.scan() == []
    assert len(again.pending) == 1


def test_a_submission_is_left_alone_until_nbgrader_has_finished_writing_it(tmp_path):
    """Is a folder still being written by `nbgrader submit` (no secret yet, not yet opened to
    0777) skipped, then picked up once complete — or once it has sat unfinished too long?"""
    folder = tmp_path / "student1+cnn_transfer+2026-01-01 10:00:00.000000 UTC"
    folder.mkdir(mode=0o755)
    (folder / "cnn_transfer.ipynb").write_text("{}")
    submission = exchange.parse_submission(folder)
    assert not exchange.is_complete(submission)
    (folder / "submission_secret.txt").write_text("ab" * 64)
    assert not exchange.is_complete(submission)  # nbgrader opens the folder last
    folder.chmod(0o777)
    assert exchange.is_complete(submission)
    (folder / "submission_secret.txt").unlink()
    assert not exchange.is_complete(submission)
    later = folder.lstat().st_mtime + exchange.SETTLE_S + 1
    assert exchange.is_complete(submission, now=later)


class HangingGrader:
    """Stands for `course grade` mid-run: leaves a half-written results.json, then never returns."""

    def __init__(self, started: Path) -> None:
        self.started = started

    async def __call__(self, *, assignment_id: str, notebook: Path, student: str, out_dir: Path) -> GradeOutcome:
        folder = out_dir / student
        folder.mkdir(parents=True)
        (folder / "results.json").write_text('{"score": 0, "tes')  # cut off by the kill
        self.started.write_text("grading")
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


_KILLED_SERVICE = '''
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_gradequeue import HangingGrader, _queue
layout = {{k: Path(v) for k, v in {layout!r}.items()}}
queue = _queue(layout, HangingGrader(Path({started!r})))
asyncio.run(queue.grade_next())
'''


def test_a_job_caught_grading_by_a_kill_is_regraded_exactly_once_after_restart(layout, tmp_path):
    """When the service is killed -9 while a job is ``grading``, does the next service re-queue
    that job from jobs.json and grade it exactly once, never reading the half-written result?"""
    import signal
    import subprocess
    import sys
    import time

    queue = _queue(layout, FakeGrader())
    _submit(layout["inbound"], name=STUDENT, owner=STUDENT)
    (job,) = queue.scan()
    started = tmp_path / "started"
    # The first service: a real process, holding the job in `grading`, killed with SIGKILL.
    script = _KILLED_SERVICE.format(tests=str(Path(__file__).parent), layout={k: str(v) for k, v in layout.items()},
                                    started=str(started))
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        service = subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert service.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the first service never started grading"
            time.sleep(0.05)
    finally:
        os.kill(service.pid, signal.SIGKILL)
        service.wait()
    on_disk = {raw["job_id"]: raw for raw in json.loads((layout["work"] / "jobs.json").read_text())}
    assert on_disk[job.job_id]["state"] == GRADING and on_disk[job.job_id]["attempts"] == 1

    grader = FakeGrader(score=9.0)
    restarted = _queue(layout, grader)
    assert restarted.store.jobs[job.job_id].state == QUEUED and restarted.pending == [job.job_id]
    assert restarted.scan() == []  # the same inbound folder is not queued a second time
    asyncio.run(restarted.grade_next())
    assert asyncio.run(restarted.grade_next()) is None
    regraded = restarted.store.jobs[job.job_id]
    assert len(grader.calls) == 1 and grader.calls[0][2] == STUDENT
    assert regraded.state == DONE and regraded.score == 9.0 and regraded.feedback_published
    assert json.loads((restarted.results_dir(regraded) / "results.json").read_text())["score"] == 9.0
    feedback = layout["feedback"] / f"{exchange.feedback_hash(SECRET, 'cnn_transfer')}.html"
    assert "Score 9" in feedback.read_text()
    # and a third start finds nothing left to do
    again = _queue(layout, FakeGrader())
    assert again.pending == [] and again.store.jobs[job.job_id].state == DONE
