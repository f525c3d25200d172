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
import queue
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autograder.errors import SubmissionError
from autograder.facts import GradeResult
from autograder.grading.pipeline import (
    GRADEBOOK_FILE,
    GradeJob,
    GradingContext,
    grade_submission,
    with_embeddings,
)
from autograder.grading.gradebook import ensure_assignment, record_grades
from autograder.grading.report import RESULTS_FILE, write_grades_csv
from autograder.progress import Progress, report



def discover(paths: Iterable[Path], *, notebook: str, assignment_id: str) -> list[GradeJob]:
    """Jobs from a notebook file, a folder of ``<student>/<notebook>``, or nbgrader's
    ``submitted/<student>/<assignment>/<notebook>`` tree."""
    jobs: dict[str, GradeJob] = {}
    for path in paths:
        path = Path(path)
        if path.is_file():
            student = path.parent.name if path.name == notebook else path.stem
            jobs[student] = GradeJob(student=_safe(student, path), notebook=path)
        elif path.is_dir():
            found = False
            for student_dir in sorted(p for p in path.iterdir() if p.is_dir()):
                for candidate in (student_dir / notebook, student_dir / assignment_id / notebook):
                    if candidate.is_file():
                        jobs[student_dir.name] = GradeJob(_safe(student_dir.name, candidate), candidate)
                        found = True
                        break
            if not found:
                raise SubmissionError(
                    f"{path} holds no <student>/{notebook} nor <student>/{assignment_id}/{notebook}",
                    hint="pass a notebook, a folder of student folders, or nbgrader's submitted/",
                )
        else:
            raise SubmissionError(f"{path} does not exist", hint="check the path")
    return sorted(jobs.values(), key=lambda j: j.student)


def _safe(student: str, path: Path) -> str:
    if not student or student.startswith(".") or "/" in student or len(student) > 64:
        raise SubmissionError(f"cannot tell the student from {path}",
                              hint="name the folder after the student id")
    return student


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future: ...
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

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(ctx: GradingContext) -> Executor:
    g = ctx.course.config.grading
    if g.executor == "dask":
        from autograder.grading.dask_executor import DaskExecutor

        return DaskExecutor(concurrency=g.concurrency, address=g.dask_scheduler)
    return LocalExecutor(g.concurrency)


@dataclass
class BatchOutcome:
    graded: list[GradeResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Students whose grading hit a grader bug; no results.json, so a re-run retries them."""
    grades_csv: Path | None = None


def run_batch(ctx: GradingContext, jobs: list[GradeJob], *, force: bool = False,
              executor: Executor | None = None, progress: Progress | None = None,
              grade: Callable[..., GradeResult] = grade_submission,
              prepare: Callable[[GradingContext], GradingContext] = with_embeddings,
              ) -> BatchOutcome:
    """Grade ``jobs`` (skipping graded ones unless ``force``); ``prepare`` runs once, before the
    first job, for what every job shares (the trusted embeddings of the hidden splits)."""
    outcome = BatchOutcome()
    todo = []
    for job in jobs:
        if not force and (ctx.out_dir / job.student / RESULTS_FILE).is_file():
            outcome.skipped.append(job.student)
        else:
            if force:
                (ctx.out_dir / job.student / RESULTS_FILE).unlink(missing_ok=True)
            todo.append(job)
    if todo:
        ctx = prepare(ctx)
    ensure_assignment(gradebook_path(ctx), assignment_id=ctx.assignment.assignment_id,
                      notebook_id=Path(ctx.assignment.notebook).stem, points=ctx.assignment.points)
    own = executor is None
    executor = executor or make_executor(ctx)
    try:
        futures = {executor.submit(grade, ctx, job): job for job in todo}
        report(progress, 0, len(todo), "")
        for done, future in enumerate(cf.as_completed(futures), 1):
            job = futures[future]
            try:
                result = future.result()
                outcome.graded.append(result)
                record_in_gradebook(ctx, result)  # here, in one thread: SQLite has one writer
            except Exception as exc:  # one broken job never stops the batch
                outcome.failed[job.student] = "".join(
                    traceback.format_exception_only(type(exc), exc)).strip()
            report(progress, done, len(todo), job.student)
    finally:
        if own:
            executor.shutdown()
    outcome.grades_csv = write_grades_csv(ctx.out_dir, item_names=list(ctx.assignment.points))
    return outcome



def gradebook_path(ctx: GradingContext) -> Path:
    return ctx.gradebook or ctx.course.root / GRADEBOOK_FILE


def record_in_gradebook(ctx: GradingContext, result: GradeResult) -> None:
    """Scores into nbgrader's gradebook (in the course root, which no sandbox mounts)."""
    record_grades(gradebook_path(ctx), result,
                  notebook_id=Path(ctx.assignment.notebook).stem)
