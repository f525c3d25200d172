"""Batches: find submissions, run them through an executor, resume after any interruption.

Resume rule: a submission is graded when ``<out>/<student>/results.json`` exists;
it is written last and atomically, so a batch killed at any point (even kill -9)
re-runs exactly the submissions without one, and ``grades.csv`` is rebuilt from
all results files at the end, so nothing is lost or counted twice.

Executors share one interface (``submit(fn, *args) -> Future``), so the pipeline
does not change between the local pool (default) and Dask distributed (a local
cluster, or a remote scheduler by address). Rejected: a home-made distributed
queue.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import queue
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from autograder.errors import GraderUnavailable, SubmissionError
from autograder.facts import ExecutionResult, GradeResult, ItemResult
from autograder.grading.pipeline import (
    GradeJob,
    GradingContext,
    grade_submission,
    with_embeddings,
)
from autograder.grading import messages
from autograder.grading.gradebook import ensure_assignment, record_grades
from autograder.grading.report import RESULTS_FILE, write_grades_csv
from autograder.grading.score import printable
from autograder.progress import Progress, report



def discover(paths: Iterable[Path], *, notebook: str, assignment_id: str) -> list[GradeJob]:
    """Jobs from a notebook file, a folder of ``<student>/<notebook>``, or nbgrader's
    ``submitted/<student>/<assignment>/<notebook>`` tree.

    A file named on the command line is the instructor's choice and is taken as given.
    Inside a folder, every entry is the students': a symbolic link (to a folder or to a
    notebook: to the instructor's source notebook, say), a name that cannot name a student,
    or a folder without the notebook becomes a job that is *refused* with the reason, so
    the student still gets a zero that says why, and the rest of the batch is graded."""
    jobs: dict[str, GradeJob] = {}
    for path in paths:
        path = Path(path)
        if path.is_file():
            student = path.parent.name if path.name == notebook else path.stem
            job = GradeJob(student=student, notebook=path.resolve())
            jobs[student] = _with_valid_name(job)
        elif path.is_dir():
            entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            found = [job for entry in entries
                     if (job := _student_job(entry, notebook=notebook, assignment_id=assignment_id))]
            if not found:
                raise SubmissionError(
                    f"{path} holds no <student>/{notebook} nor <student>/{assignment_id}/{notebook}",
                    hint="pass a notebook, a folder of student folders, or nbgrader's submitted/",
                )
            jobs.update((job.student, job) for job in found)
        else:
            raise SubmissionError(f"{path} does not exist", hint="check the path")
    return sorted(jobs.values(), key=lambda j: j.student)


def _student_job(entry: Path, *, notebook: str, assignment_id: str) -> GradeJob | None:
    """The job for one entry of a submissions folder (None for a stray plain file)."""
    if entry.is_symlink():
        job = GradeJob(entry.name, entry, refused=messages.SUBMISSION_SYMLINK.format(
            name=entry.name))
        return _with_valid_name(job)
    if not entry.is_dir():
        return None
    for candidate in (entry / notebook, entry / assignment_id / notebook):
        links = [p for p in (candidate.parent, candidate) if p.is_symlink()]
        if links:
            return _with_valid_name(GradeJob(entry.name, candidate, refused=(
                messages.SUBMISSION_SYMLINK.format(name=links[0].name))))
        if candidate.is_file():
            return _with_valid_name(GradeJob(entry.name, candidate))
    # Something was submitted, but not the notebook (a misnamed file, say): tell them. A
    # student folder of nbgrader's tree without this assignment has not submitted it yet.
    if (entry / assignment_id).is_dir() or any(
            p.is_file() and not p.name.startswith(".") for p in entry.iterdir()):
        return _with_valid_name(GradeJob(entry.name, entry / notebook, refused=(
            messages.SUBMISSION_NO_NOTEBOOK.format(notebook=notebook))))
    return None


def _with_valid_name(job: GradeJob) -> GradeJob:
    """``job``, or, when its name cannot name a student (and so an output folder, a CSV row
    and a page title), a refused job under a stable stand-in name that says why."""
    if valid_student_id(job.student):
        return job
    digest = hashlib.sha256(job.student.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    shown = printable(job.student[:80])
    return replace(job, student=f"unnamed-{digest}",
                   refused=messages.SUBMISSION_BAD_NAME.format(shown=repr(shown)))


def valid_student_id(name: str) -> bool:
    """Printable, no slash, not hidden, and short enough to name a file (255 bytes)."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates from undecodable bytes in a file name
        return False
    return (0 < size <= 255 and not name.startswith(".") and "/" not in name
            and name.isprintable())


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future: ...
    def submit_job(self, ctx: GradingContext, job: GradeJob, grade: Callable[..., GradeResult]) -> cf.Future:
        """Grade one job with ``grade``; the future's result is its :class:`GradeResult`, whose
        files are in ``<out>/<student>/`` by then."""
    def shutdown(self) -> None: ...


class LocalExecutor:
    """A thread pool of ``concurrency`` slots; each job gets a slot number (its sandbox uid)."""

    def __init__(self, concurrency: int) -> None:
        self._pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="grade")
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(concurrency):
            self._slots.put(slot)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        def with_slot() -> Any:
            slot = self._slots.get()
            try:
                return fn(*args, slot=slot, **kwargs)
            finally:
                self._slots.put(slot)

        return self._pool.submit(with_slot)

    def submit_job(self, ctx: GradingContext, job: GradeJob, grade: Callable[..., GradeResult]) -> cf.Future:
        return self.submit(grade, ctx, job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(ctx: GradingContext) -> Executor:
    g = ctx.course.config.grading
    if g.executor == "dask":
        from autograder.grading import dask_tls
        from autograder.grading.dask_executor import DaskExecutor

        tls = dask_tls.tls_dir(ctx.course.root, g.dask_tls_dir)
        return DaskExecutor(concurrency=g.concurrency, address=g.dask_scheduler,
                            security=dask_tls.client_security(tls))
    return LocalExecutor(g.concurrency)


@dataclass
class BatchOutcome:
    graded: list[GradeResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Students whose grading hit a grader bug: their results.json says so (or there is
    none), nothing went into the gradebook, and a re-run retries them."""
    grades_csv: Path | None = None
    unavailable: list[str] = field(default_factory=list)
    """Students (also in ``failed``) whose submission the grading cluster dropped or never
    took: nothing was wrong with it, and ``course grade`` exits with
    :attr:`GraderUnavailable.EXIT_STATUS` so that its caller retries."""


def run_batch(ctx: GradingContext, jobs: list[GradeJob], *, force: bool = False,
              executor: Executor | None = None, progress: Progress | None = None,
              grade: Callable[..., GradeResult] = grade_submission,
              prepare: Callable[[GradingContext], GradingContext] = with_embeddings,
              ) -> BatchOutcome:
    """Grade ``jobs`` (skipping graded ones unless ``force``); ``prepare`` runs once, before the
    first job, for what every job shares (the trusted embeddings of the hidden splits)."""
    from autograder.course.permissions import protect_course_files

    protect_course_files(ctx.course)  # every grading run starts from closed secrets
    outcome = BatchOutcome()
    todo = []
    for job in jobs:
        if not force and is_graded(ctx.out_dir / job.student / RESULTS_FILE):
            outcome.skipped.append(job.student)
        else:
            if force:
                (ctx.out_dir / job.student / RESULTS_FILE).unlink(missing_ok=True)
            todo.append(job)
    own = executor is None
    executor = executor or make_executor(ctx)
    try:
        if todo and not getattr(executor, "grades_as_data", False):  # else each worker prepares its own
            ctx = prepare(ctx)
        futures = {executor.submit_job(ctx, job, grade): job for job in todo}
        # The gradebook is only written once a job ends: register the assignment while the
        # first notebooks run (opening nbgrader's gradebook costs seconds), in this thread, the
        # gradebook's one writer.
        ensure_assignment(gradebook_path(ctx), assignment_id=ctx.assignment.assignment_id,
                          notebook_id=Path(ctx.assignment.notebook).stem, points=ctx.assignment.points)
        # A batch killed between a results.json and its gradebook entry (two files, never written
        # at once) left that grade only on disk, and the re-run skips it: so record every skipped
        # grade again from its results.json. Idempotent: the same scores overwrite themselves.
        for student in outcome.skipped:
            try:
                record_in_gradebook(ctx, result_from_file(ctx, ctx.out_dir / student / RESULTS_FILE))
            except Exception as exc:
                outcome.failed[student] = "".join(
                    traceback.format_exception_only(type(exc), exc)).strip()
        report(progress, 0, len(todo), "")
        for done, future in enumerate(cf.as_completed(futures), 1):
            job = futures[future]
            try:
                result = future.result()
                if result.grader_error:  # a placeholder result; never a grade
                    outcome.failed[job.student] = result.grader_error
                else:
                    outcome.graded.append(result)
                    record_in_gradebook(ctx, result)  # one thread: SQLite has one writer
            except Exception as exc:  # one broken job never stops the batch
                outcome.failed[job.student] = "".join(
                    traceback.format_exception_only(type(exc), exc)).strip()
                if isinstance(exc, GraderUnavailable):
                    outcome.unavailable.append(job.student)
            report(progress, done, len(todo), job.student)
    finally:
        if own:
            executor.shutdown()
    outcome.grades_csv = write_grades_csv(ctx.out_dir, item_names=list(ctx.assignment.points))
    close_outputs(ctx)
    return outcome


def close_outputs(ctx: GradingContext) -> None:
    """Close what this batch wrote (the output folder, the gradebook) to other users as soon
    as it exists, wherever --out and --gradebook put it, and the course's secrets with them:
    the permission step before a batch cannot cover files the batch has yet to create."""
    import os

    from autograder.course.permissions import close_private, protect_course_files

    if os.geteuid() != 0:
        return
    protect_course_files(ctx.course)
    for path in (ctx.out_dir, gradebook_path(ctx)):
        close_private(path)



def is_graded(results: Path) -> bool:
    """A results.json exists and is a grade (not a grader-error placeholder)."""
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and not data.get("extra_data", {}).get("grader_error")


def result_from_file(ctx: GradingContext, results: Path) -> GradeResult:
    """A written results.json as a result, with what the gradebook records (item scores)."""
    data = json.loads(results.read_text(encoding="utf-8"))
    items = tuple(ItemResult(t["name"], float(t["score"]), float(t["max_score"]),
                             t.get("status") == "passed", t.get("output", ""))
                  for t in data.get("tests", []))
    student = results.parent.name
    execution = ExecutionResult(student=student, cells=(), wall_s=0.0, kernel_status=str(
        data.get("extra_data", {}).get("kernel_status", "")))
    return GradeResult(student=student, assignment_id=ctx.assignment.assignment_id,
                       score=float(data["score"]), max_score=float(data["max_score"]),
                       items=items, execution=execution)


def gradebook_path(ctx: GradingContext) -> Path:
    return ctx.gradebook or ctx.course.gradebook_file


def record_in_gradebook(ctx: GradingContext, result: GradeResult) -> None:
    """Scores into nbgrader's gradebook (in the course root, which no sandbox mounts)."""
    record_grades(gradebook_path(ctx), result,
                  notebook_id=Path(ctx.assignment.notebook).stem)
