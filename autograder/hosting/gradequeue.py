"""Grade on submit: find new submissions in the exchange, queue them, grade each, publish feedback.

The queue is in memory (first in, first out, except that one student's submissions are
graded one after the other, never two at once) and mirrored to ``jobs.json`` so that a
restarted service knows what it already graded; a job found ``grading`` at start is queued
again, and its grader did not outlive the old service (it gets SIGKILL when the service
dies, even by ``kill -9``), so the job is graded once. Tests: tests/hosting/test_gradequeue.py
and tests/hosting/test_service_faults.py (kill -9 mid-batch, a burst of 100).
Grading itself is a subprocess (``course grade <assignment> <notebook> --out <dir>``)
behind the :class:`GradeRunner` protocol, so tests can pass a fake runner and the
service never imports TensorFlow or the grading stages (they run sandboxed as root's
child, with the kit's own limits).

Not done here: HTTP (``autograder.hosting.service``), permissions logic (``exchange``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from autograder.errors import GraderUnavailable
from autograder.hosting import exchange
from autograder.paths import env_prefix
from autograder.hosting.exchange import Submission, SubmissionRejected

QUEUED, GRADING, DONE, FAILED, REJECTED = "queued", "grading", "done", "failed", "rejected"
GRADE_MARGIN_S = 300.0
"""Past the notebook budget: time for the grader's own start, checks and report."""


@dataclass
class Job:
    """One submission as the service sees it (mirrored to jobs.json)."""

    job_id: str
    """The inbound folder name ``<student>+<assignment>+<timestamp>+<random>``."""
    student: str
    assignment_id: str
    submitted_at: str
    """nbgrader's timestamp of the submission."""
    state: str = QUEUED
    found_at: float = 0.0
    """When the service saw the submission (epoch seconds)."""
    started_at: float = 0.0
    finished_at: float = 0.0
    score: float | None = None
    max_score: float | None = None
    message: str = ""
    """Why a job failed or was rejected; a short, student-facing sentence."""
    detail: str = ""
    """For staff only: the grader's own error (may name paths); never shown to students."""
    runtime_s: float | None = None
    """The notebook's own run time in the grader (``execution_time`` of results.json)."""
    feedback_published: bool = False
    attempts: int = 0

    @property
    def latency_s(self) -> float | None:
        """From pick-up to published feedback."""
        return self.finished_at - self.found_at if self.finished_at and self.found_at else None


@dataclass(frozen=True)
class GradeOutcome:
    """What a runner produced for one notebook."""

    score: float
    max_score: float
    results_json: Path
    feedback_html: Path
    runtime_s: float | None = None


class GradingFailed(Exception):
    """The grader could not produce results (not: the submission scored low)."""


class GraderAway(GradingFailed):
    """``course grade`` could not reach its grading cluster (exit status 75): the job goes
    back to the queue, and is graded once the cluster answers again."""


RETRY_AWAY_S = 10.0
"""How long the queue waits after :class:`GraderAway` before it tries that job again."""


class GradeRunner(Protocol):
    async def __call__(self, *, assignment_id: str, notebook: Path, student: str,
                       out_dir: Path) -> GradeOutcome: ...


def read_outcome(out_dir: Path, student: str) -> GradeOutcome:
    """The Gradescope-format ``results.json`` and ``feedback.html`` that ``course grade`` wrote."""
    folder = out_dir / student
    results, feedback = folder / "results.json", folder / "feedback.html"
    if not results.is_file() or not feedback.is_file():
        raise GradingFailed(f"the grader wrote no results.json/feedback.html in {folder}")
    data = json.loads(results.read_text())
    tests = data.get("tests", [])
    max_score = data.get("max_score", sum(float(t.get("max_score", 0)) for t in tests))
    runtime = data.get("execution_time")
    return GradeOutcome(score=float(data.get("score", 0.0)), max_score=float(max_score),
                        results_json=results, feedback_html=feedback,
                        runtime_s=float(runtime) if runtime is not None else None)


@dataclass
class CourseGradeRunner:
    """Runs ``course grade`` as a subprocess (the real grader, sandboxed by the kit)."""

    course_root: Path
    timeout_s: float
    command: tuple[str, ...] = field(default_factory=lambda: (str(env_prefix() / "bin" / "course"),))
    gradebook: Path | None = None
    """The instructor's gradebook, so formgrader shows the scores; owned by ``gradebook_owner``."""
    gradebook_owner: tuple[int, int] | None = None

    async def __call__(self, *, assignment_id: str, notebook: Path, student: str,
                       out_dir: Path) -> GradeOutcome:
        argv = [*self.command, "grade", assignment_id, str(notebook), "--out", str(out_dir),
                "--student", student, "--force"]
        if self.gradebook is not None:
            argv += ["--gradebook", str(self.gradebook)]
        env = {**os.environ, "COURSE_ROOT": str(self.course_root)}
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=self.course_root, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), self.timeout_s)
        except asyncio.TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            raise GradingFailed(f"`course grade` ran past {self.timeout_s:g} s") from None
        except asyncio.CancelledError:  # the service is stopping: leave no grader behind
            _kill_group(process.pid)
            raise
        (out_dir / "grade.log").write_bytes(output or b"")
        if self.gradebook is not None and self.gradebook_owner and self.gradebook.exists():
            os.chown(self.gradebook, *self.gradebook_owner)  # formgrader writes manual grades
        if process.returncode != 0:
            tail = (output or b"").decode(errors="replace").strip().splitlines()[-5:]
            kind = GraderAway if process.returncode == GraderUnavailable.EXIT_STATUS else GradingFailed
            raise kind(f"`course grade` exited with {process.returncode}: " + " | ".join(tail))
        return read_outcome(out_dir, student)


def _die_with_parent(parent: int) -> Any:
    """A ``preexec_fn``: the grader gets SIGKILL when the service dies, even by ``kill -9``.

    Otherwise a `course grade` of a killed service lives on (it runs in its own session)
    while the restarted service grades the same job again from the same folder: two graders
    racing on one results.json and one gradebook entry. (Its own sandboxed kernels die with
    it: bubblewrap runs them with ``--die-with-parent``.)"""

    import ctypes

    # Looked up here, not in the child: between fork and exec only the C call may run (an
    # import there could wait forever on a lock another thread held at the fork).
    prctl, pr_set_pdeathsig, sigkill = ctypes.CDLL(None, use_errno=True).prctl, 1, int(signal.SIGKILL)

    def in_child() -> None:
        prctl(pr_set_pdeathsig, sigkill)
        if os.getppid() != parent:  # the service died before prctl took effect
            os.kill(os.getpid(), sigkill)

    return in_child


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class JobStore:
    """Jobs by id, persisted atomically to one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: dict[str, Job] = {}
        if path.is_file():
            names = {f.name for f in fields(Job)}
            for raw in json.loads(path.read_text()):
                job = Job(**{k: v for k, v in raw.items() if k in names})
                self.jobs[job.job_id] = job

    def save(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps([asdict(j) for j in self.jobs.values()], indent=1))
        os.replace(partial, self.path)


@dataclass
class GradingQueue:
    """The service's core: scan, queue, grade, publish. One instance per service process."""

    inbound: Path
    feedback_dir: Path
    work_dir: Path
    notebooks: dict[str, str]
    """Assignment id -> notebook file name (from course_config.py)."""
    runner: GradeRunner
    feedback_gid: int
    """Group of published feedback files (the instructor's)."""
    store: JobStore
    pending: list[str] = field(default_factory=list)
    _wake: asyncio.Event | None = None
    _busy: set[str] = field(default_factory=set)
    """Students with a job being graded now: their next one waits (see :meth:`grade_next`)."""

    def __post_init__(self) -> None:
        for job in self.store.jobs.values():
            if job.state in (QUEUED, GRADING):  # interrupted by a restart
                job.state = QUEUED
                self.pending.append(job.job_id)

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def scan(self) -> list[Job]:
        """Register submissions not seen before; returns the new jobs (queued or rejected)."""
        new: list[Job] = []
        for submission in exchange.list_submissions(self.inbound):
            if submission.job_id in self.store.jobs or not (
                    exchange.is_complete(submission) or _closed_at_pick_up(submission)):
                continue
            job = Job(job_id=submission.job_id, student=submission.student,
                      assignment_id=submission.assignment_id, submitted_at=submission.timestamp,
                      found_at=time.time())
            self.store.jobs[job.job_id] = job
            try:
                self._pick_up(submission)
            except SubmissionRejected as exc:
                job.state, job.message, job.finished_at = REJECTED, exc.reason, time.time()
            else:
                self.pending.append(job.job_id)
                self._event().set()
            new.append(job)
        if new:
            self.store.save()
        return new

    def _pick_up(self, submission: Submission) -> None:
        notebook_name = self.notebooks.get(submission.assignment_id)
        if notebook_name is None:
            raise SubmissionRejected(f"{submission.assignment_id!r} is not an assignment of this course")
        exchange.pick_up(submission, notebook_name, self._snapshot_dir(submission.job_id, submission.student))

    def _snapshot_dir(self, job_id: str, student: str) -> Path:
        return self.work_dir / job_id / "submission" / student

    def position(self, job_id: str) -> int | None:
        """1 for the next job to be graded; ``None`` when not waiting."""
        return self.pending.index(job_id) + 1 if job_id in self.pending else None

    def regrade(self, job_id: str) -> Job:
        job = self.store.jobs[job_id]
        if job.state in (DONE, FAILED) and job_id not in self.pending:
            job.state, job.message, job.detail = QUEUED, "", ""
            self.pending.append(job_id)
            self.store.save()
            self._event().set()
        return job

    async def grade_next(self) -> Job | None:
        """Grade the oldest pending job of a student who has none being graded, if any.

        With several workers, two submissions of one student must not be graded at once:
        the later could finish first, and the earlier one's grade would then overwrite it in
        the gradebook. So a student's submissions are graded one after the other, in the
        order they were found; other students' jobs go ahead meanwhile."""
        job_id = next((j for j in self.pending if self.store.jobs[j].student not in self._busy), None)
        if job_id is None:
            return None
        self.pending.remove(job_id)
        job = self.store.jobs[job_id]
        self._busy.add(job.student)
        try:
            job.state, job.started_at, job.attempts = GRADING, time.time(), job.attempts + 1
            self.store.save()
            try:
                await self._grade(job)
            except GraderAway as exc:  # nothing wrong with the submission: queue it again
                job.state, job.detail = QUEUED, str(exc)
                job.message = "Waiting for the grading cluster; it will be graded when it is back."
                self.store.save()
                await asyncio.sleep(RETRY_AWAY_S)
                self.pending.insert(0, job.job_id)
                return job
            except (GradingFailed, SubmissionRejected, OSError, ValueError) as exc:
                job.state, job.detail = FAILED, str(exc)
                job.message = "The grader could not finish; the instructor can see why and re-grade."
            else:
                job.state, job.message, job.detail = DONE, "", ""
            job.finished_at = time.time()
            self.store.save()
        finally:
            self._busy.discard(job.student)
            self._event().set()  # the student's next submission may be ready now
        return job

    async def _grade(self, job: Job) -> None:
        snapshot_dir = self._snapshot_dir(job.job_id, job.student)
        notebook = snapshot_dir / self.notebooks[job.assignment_id]
        out_dir = self.work_dir / job.job_id / "graded"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        outcome = await self.runner(assignment_id=job.assignment_id, notebook=notebook,
                                    student=job.student, out_dir=out_dir)
        job.score, job.max_score, job.runtime_s = outcome.score, outcome.max_score, outcome.runtime_s
        secret = (snapshot_dir.parent / "submission_secret.txt").read_text()  # captured at pick-up
        exchange.publish_feedback(outcome.feedback_html, feedback_dir=self.feedback_dir, secret=secret,
                                  notebook_id=Path(self.notebooks[job.assignment_id]).stem,
                                  student=job.student, group_gid=self.feedback_gid)
        job.feedback_published = True

    def results_dir(self, job: Job) -> Path:
        return self.work_dir / job.job_id / "graded" / job.student

    async def run_worker(self) -> None:
        while True:
            if await self.grade_next() is None:  # nothing pending, or only busy students'
                self._event().clear()
                await self._event().wait()

    async def run_scanner(self, *, interval_s: float) -> None:
        while True:
            self.scan()
            await asyncio.sleep(interval_s)


def _closed_at_pick_up(submission: Submission) -> bool:
    """Whether pick-up already closed this folder (to 0750) although no job records it: the
    service was killed between a pick-up and the save of ``jobs.json``. nbgrader had finished
    it (pick-up waits for that), so it is queued now, not after ``exchange.SETTLE_S``."""
    try:
        return stat.S_IMODE(submission.folder.lstat().st_mode) == exchange.SUBMISSION_DIR_MODE
    except OSError:
        return False


def job_summary(job: Job, position: int | None) -> dict[str, Any]:
    data = asdict(job)
    data["position"] = position
    data["latency_s"] = job.latency_s
    return data
