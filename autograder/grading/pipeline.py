"""Grading one submission, start to finish. The order of stages, in one place:

1. execute  — run the notebook in a sandbox under limits         (execute.py, sandbox.py)
2. export   — copy out plain facts: answers, histories, .keras     (export.py)
3. check    — the rubric in a clean, confined pytest process        (check.py, rubric/<id>/)
4. score    — points and plain-language reasons per rubric item     (score.py)
5. report   — results.json, feedback.html; the gradebook and CSV    (report.py, gradebook.py)

This module only sequences the stages and owns the grader's folders; it holds no
grading logic of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from autograder import plots
from autograder.course.config import Course, assignment_points
from autograder.course.permissions import share_with_grader
from autograder.course.settings import Assignment
from autograder.errors import GradingError, SubmissionError
from autograder.facts import ExecutionResult, GradeResult, ItemResult
from autograder.grading import answer_key, check, embeddings, messages, report, score
from autograder.grading.evidence import MODELS_DIR, CheckInputs
from autograder.grading.layout import ItemLabel, item_labels
from autograder.grading.submission import MAX_NOTEBOOK_BYTES, CellNames, Submission

if TYPE_CHECKING:
    from autograder.grading.execute import ExecutionSpec, ModelReady

GRADER_LOG = "grader.log"
"""The checker's output for staff (never released), beside each student's reports."""
NO_WEIGHTS = "none"
"""The weights mode of an assignment that does not use the backbone (``uses_backbone=False``):
its answer key is ``<profile>-none.json`` and no weights file is looked for."""
TEMPLATE_DIR = "templates"
"""A course's own feedback page: ``<course root>/templates/feedback.html.j2`` (see report.py)."""


@dataclass(frozen=True)
class GradeJob:
    """One submission to grade."""

    student: str
    notebook: Path
    refused: str = ""
    """Why this submission cannot be run at all (a symbolic link, a folder name that cannot
    name a student, no notebook); it then gets a zero with this reason, like any other."""


def describe_setting(profile_name: str, weights_mode: str) -> str:
    """``<profile> profile, <mode> weights``, or ``..., no pretrained weights`` (:data:`NO_WEIGHTS`)."""
    weights = "no pretrained weights" if weights_mode == NO_WEIGHTS else f"{weights_mode} weights"
    return f"{profile_name} profile, {weights}"


@dataclass(frozen=True)
class GradingContext:
    """What every job of a batch shares (resolved once, before the batch)."""

    course: Course
    assignment: Assignment
    profile_name: str
    weights_mode: str
    weights_file: Path | None
    key_file: Path
    grading_dir: Path
    validation_dir: Path
    out_dir: Path
    embeddings_dir: Path | None = None
    """Trusted embeddings of the hidden splits, once :func:`with_embeddings` has made them."""
    gradebook: Path | None = None
    """nbgrader's gradebook database (default: ``gradebook.db`` in the course root)."""
    item_labels: dict[str, ItemLabel] = field(default_factory=dict)
    """How the release notebook names and groups the graded items (for feedback pages)."""
    template_dir: Path | None = None
    """The course's own feedback template folder (``<course root>/templates``), if any."""
    pass_marks: dict[str, float] = field(default_factory=dict)
    """Each model's accuracy threshold from the answer key (not-assessable ones left out),
    read once per batch and drawn on the feedback's training curves."""

    @cached_property
    def execution_spec(self) -> ExecutionSpec:
        """What the executor needs of this batch (the release's grade ids read once)."""
        from autograder.grading.execute import ExecutionSpec

        return ExecutionSpec.from_course(self.course, self.assignment, profile=self.profile_name,
                                         weights_mode=self.weights_mode,
                                         weights_file=self.weights_file)

    def setting(self) -> str:
        """How a table or message names this batch's setting, e.g. ``reduced profile, stand-in
        weights``; an assignment without a backbone has no weights to name."""
        return describe_setting(self.profile_name, self.weights_mode)

    def epochs(self) -> dict[str, int]:
        """Epochs of the trainings this assignment's notebook runs (``Assignment.trainings``),
        at this batch's profile."""
        p = self.course.config.profiles[self.profile_name]
        return {name: int(getattr(p, f"{name}_epochs")) for name in self.assignment.trainings}

    def image_size_px(self) -> int:
        return self.course.config.profiles[self.profile_name].image_size_px

    def key_fingerprint(self) -> str:
        """What this batch's answer key must have been derived from (see :mod:`answer_key`)."""
        return answer_key.key_fingerprint(
            source_notebook=self.course.source_dir(self.assignment.assignment_id)
            / self.assignment.notebook,
            profile=self.course.config.profiles[self.profile_name],
            accuracy_margin=self.assignment.accuracy_margin,
            manifest=self.course.dataset_manifest if self.assignment.uses_images else None,
            weights_file=self.weights_file)

    def key_is_current(self) -> bool:
        return answer_key.key_is_current(self.key_file, self.key_fingerprint())

    def check_inputs(self, facts_dir: Path, *, report_file: Path, with_key: bool = True) -> CheckInputs:
        return CheckInputs(
            facts_dir=facts_dir, key_file=self.key_file if with_key else None,
            grading_dir=self.grading_dir, validation_dir=self.validation_dir,
            weights_file=self.weights_file, classes=self.course.config.dataset.classes,
            image_size_px=self.image_size_px(), epochs=self.epochs(), report_file=report_file,
            embeddings_dir=self.embeddings_dir,
        )


def with_embeddings(ctx: GradingContext) -> GradingContext:
    """The context with the trusted embeddings cache filled (computed once per cache key);
    the context as it is for an assignment that does not use the backbone."""
    if ctx.embeddings_dir is not None or not ctx.assignment.uses_backbone:
        return ctx
    def compute() -> dict[str, bytes]:
        work = Path(tempfile.mkdtemp(prefix="course-embed-"))
        open_to_checker(work)
        try:
            return check.run_embeddings(
                ctx.check_inputs(work, report_file=work / "r.json", with_key=False))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    key = embeddings.cache_key(ctx.weights_file, ctx.image_size_px(),
                               (ctx.grading_dir, ctx.validation_dir))
    cache = embeddings.ensure(ctx.course.embeddings_dir, key, compute)
    open_to_checker(cache.parent)
    return replace(ctx, embeddings_dir=cache)


def grade_submission(ctx: GradingContext, job: GradeJob, *, slot: int) -> GradeResult:
    """Run every stage for one submission and write its reports; returns the result.

    Whatever the submission holds, it ends with a ``results.json``: a file that cannot be
    run gets a zero with the reason, and a grader failure after the notebook ran gets a
    result that says so (``GradeResult.grader_error``), which the batch counts as failed
    and a re-run retries. Only a machine that cannot grade at all (no sandbox) raises."""
    student_dir = ctx.out_dir / job.student
    work = Path(tempfile.mkdtemp(prefix="course-grade-"))
    checker: check.StartedRubric | None = None
    try:
        try:
            if job.refused:
                raise SubmissionError(job.refused)
            sub = Submission.read(take_submission(job.notebook, work / "submission.ipynb"))
            checker = start_checker(ctx, work)  # warms up while the notebook runs
            plots.preload()  # so do the reports' imports
            execution = execute_stage(ctx, sub, student=job.student, slot=slot,
                                      job_dir=work / "job", on_model=offer_to(checker, work))
        except SubmissionError as exc:  # not a notebook we can run: a clear zero, nothing else
            result = zero_result(ctx, job, messages.SUBMISSION_UNREADABLE.format(
                reason=_sentence(exc.message)), kernel_status="refused")
        else:
            curves = report.draw_curves_now(execution.histories, ctx.pass_marks)
            try:
                result = check_and_score(ctx, job, execution, cell_sources=sub.names,
                                         work=work, student_dir=student_dir, checker=checker)
            except Exception as exc:  # a grader bug met this submission: say so, keep going
                result = replace(zero_result(ctx, job, messages.GRADER_ERROR.format(
                    error=type(exc).__name__), kernel_status=execution.kernel_status),
                    grader_error=_short_error(exc))
            curves.join()
        result = score.redact_result(result, host_paths(ctx, work))
        report.write_student_reports(result, student_dir, limits=ctx.course.config.limits,
                                     labels=ctx.item_labels, template_dir=ctx.template_dir,
                                     pass_marks=ctx.pass_marks)
        if checker is not None and checker.finished:  # it has exited by now, or soon
            report.write_atomic(student_dir / GRADER_LOG, checker.log())
        return result
    finally:
        if checker is not None:
            checker.cancel()
        shutil.rmtree(work, ignore_errors=True)


def start_checker(ctx: GradingContext, work: Path) -> check.StartedRubric:
    """The confined rubric run for the job whose folder is ``work``, started now: its facts will
    be under ``work`` (see :func:`facts_for_checker`)."""
    return check.start_rubric(ctx.check_inputs(work, report_file=work / "report.json"),
                              rubric_dir=ctx.course.rubric_dir(ctx.assignment.assignment_id),
                              reach=[work], limits=ctx.course.config.limits)


def offer_to(checker: check.StartedRubric, work: Path) -> ModelReady:
    """Hand each model file the export finished to the checker waiting for ``work``'s facts."""
    def offer(name: str, path: Path) -> None:
        open_to_checker(work)
        checker.offer_model(name, path)
    return offer


def check_and_score(ctx: GradingContext, job: GradeJob, execution: ExecutionResult, *,
                    cell_sources: CellNames, work: Path, student_dir: Path,
                    checker: check.StartedRubric) -> GradeResult:
    """Stages 3–4 for an executed submission (whose facts the executor laid out): check, score.
    ``checker``: the rubric run :func:`start_checker` began for this job; its log is the
    caller's to keep once the reports are out (:func:`grade_submission`)."""
    facts_dir = facts_for_checker(execution, work)
    checked = checker.finish(facts_dir, models=execution.models)
    stopped = checker.stopped() if not checked.get("items") else None
    if stopped is not None and stopped.cause == "crash":
        # Not its cgroup's limits: perhaps the host's (its OOM killer), so not the student's
        # doing for sure. Once more as it was; a crash that comes back is the models'.
        checked, log, stopped = judge_now(ctx, facts_dir)
        checker.add_to_log(f"\nThe checker crashed before its report; judged once more:\n{log}")
    if stopped is not None and execution.models:
        checked = judge_without_models(ctx, execution, work, checker, stopped)
    if not checked.get("items"):  # the checker died before judging anything: ours to fix
        raise GradingError("the checker wrote no report; see grader.log",
                           hint="run the rubric on this submission's facts by hand")
    items = score.score_items(checked.get("items", {}), points=ctx.assignment.points,
                              execution=execution, cell_sources=cell_sources,
                              limits=ctx.course.config.limits,
                              reduced=score.reduced_profile(ctx.course.config.profiles, ctx.profile_name))
    got, out_of = score.total(items)
    if ctx.course.config.grading.keep_models:
        keep = student_dir / "models"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(facts_dir / MODELS_DIR, keep)
    return GradeResult(
        student=job.student, assignment_id=ctx.assignment.assignment_id, score=got,
        max_score=out_of, items=items, execution=execution,
        model_summaries={n: rows for n, rows in checked.get("summaries", {}).items()
                         if n in ctx.assignment.model_names},
    )


def judge_without_models(ctx: GradingContext, execution: ExecutionResult, work: Path,
                         checker: check.StartedRubric, stopped: check.Stopped) -> dict:
    """The rubric's records for the submission with its models left out, each with the reason,
    after the checker that had them ended without a report (``stopped``: out of memory, out of
    time, or crashed). A model file is the student's to write, and Keras builds every layer its
    config declares before reading a weight: a crafted file is a memory or time bomb. The
    answers and histories are still judged, so the student gets a grade and the reason; the
    first run's log and this one's go to grader.log for staff. Empty records when this run
    fails too (then the fault is not the models')."""
    from autograder.grading.export import ExportedFacts, write_facts

    why = {"memory": messages.MODELS_STOPPED_MEMORY, "time": messages.MODELS_STOPPED_TIME
           }.get(stopped.cause, messages.MODELS_STOPPED_CRASH).format(detail=stopped.detail)
    reason = messages.MODELS_NOT_CHECKED.format(why=why)
    facts_dir = work / "facts-without-models"
    write_facts(ExportedFacts(
        answers=execution.answers, histories=execution.histories,
        answer_errors={**execution.answer_errors, **{name: reason for name in execution.models}},
    ), facts_dir)
    open_to_checker(work)
    records, log, _ = judge_now(ctx, facts_dir, timeout_s=RETRY_CHECK_TIMEOUT_S)
    checker.add_to_log(f"\nThe checker ended without a report ({stopped.cause}: "
                       f"{stopped.detail}); judged again without the models "
                       f"{sorted(execution.models)}:\n{log}")
    return records


RETRY_CHECK_TIMEOUT_S = 300
"""A rubric run without models takes seconds (the reference's: about 5 s); it never waits as
long as the first run may."""


def judge_now(ctx: GradingContext, facts_dir: Path, *, timeout_s: float = check.CHECK_TIMEOUT_S
              ) -> tuple[dict, str, check.Stopped | None]:
    """A confined rubric run on ``facts_dir`` started now (not while the notebook ran), under
    the same limits as the job's own checker: records, log, and why it ended without a report."""
    return check.judge(ctx.check_inputs(facts_dir, report_file=facts_dir / "report.json"),
                       rubric_dir=ctx.course.rubric_dir(ctx.assignment.assignment_id),
                       limits=ctx.course.config.limits, timeout_s=timeout_s)


def take_submission(notebook: Path, copy: Path) -> Path:
    """Copy the submitted notebook into the grader's own folder, never through a symbolic
    link (a link to the source notebook would otherwise be graded as the student's work),
    and at most :data:`MAX_NOTEBOOK_BYTES`; every later stage reads the copy."""
    import errno
    import os
    import stat

    name = notebook.name
    try:
        fd = os.open(notebook, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SubmissionError(f"{name} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SubmissionError(messages.SUBMISSION_SYMLINK.format(name=name)) from None
        raise SubmissionError(f"{name} could not be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionError(f"{name} is not a plain file")
        data = os.read(fd, MAX_NOTEBOOK_BYTES + 1)
        while len(data) <= MAX_NOTEBOOK_BYTES:
            more = os.read(fd, MAX_NOTEBOOK_BYTES + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"{name} is over the {MAX_NOTEBOOK_BYTES:,} bytes allowed; clear "
                              "the outputs (Edit > Clear All Outputs) and submit again")
    copy.write_bytes(data)
    copy.chmod(0o600)
    return copy


def host_paths(ctx: GradingContext, work: Path) -> list[tuple[str, str]]:
    """Grader-machine paths that must never reach a student, each with what to say instead."""
    import sys

    from autograder.grading import stage
    from autograder.paths import venv_dir

    pairs = [(str(ctx.course.root), "<course>"), (str(work), "<grader>"),
             (str(stage.STAGE_ROOT), "<sandbox>"), (stage.INSIDE_WORK, "."),
             (stage.INSIDE_EXPORT, "<grader>"), (stage.INSIDE_WEIGHTS, "<weights>"),
             (tempfile.gettempdir() + "/course-", "<grader>/course-")]
    for prefix in {sys.prefix, sys.exec_prefix}:
        if prefix not in ("/usr", "/usr/local"):
            pairs.append((prefix, "<python>"))
    venv = venv_dir()
    if venv is not None:
        pairs.append((str(venv), "<python>"))
    return pairs


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def execute_stage(ctx: GradingContext, sub: Submission, *, student: str, slot: int,
                  job_dir: Path, on_model: ModelReady | None = None) -> ExecutionResult:
    """Execute and export (a lost kernel's earlier cells replayed: :mod:`execute`);
    ``on_model``: see :func:`autograder.grading.execute.execute_submission`."""
    from autograder.grading.execute import execute_submission
    from autograder.grading.slots import free_slot

    # ``slot`` is this job's slot in its own batch; another grader on the machine may hold
    # it, so take any free one (each has its own uid) rather than wait.
    with free_slot(slot, count=max(ctx.course.config.grading.concurrency, slot + 1)) as held:
        return execute_submission(sub, ctx.execution_spec, student=student, slot=held,
                                  job_dir=job_dir, on_model=on_model)


def facts_for_checker(execution: ExecutionResult, work: Path) -> Path:
    """The facts folder the executor wrote (inside ``work``), opened to the checker."""
    if execution.facts_dir is None or not execution.facts_dir.is_relative_to(work):
        raise GradingError("the executor left no facts folder in the job's work folder",
                           hint="a grader bug: see grader.log")
    open_to_checker(work)
    return execution.facts_dir


def open_to_checker(folder: Path) -> None:
    """Let the confined checker (nobody + the course-grader group) read ``folder``; as root the
    folder is closed to everyone else, so no other student can read these facts."""
    import os

    if os.geteuid() == 0:
        share_with_grader(folder)
    else:  # developers without root: the checker runs as themselves
        folder.chmod(0o700)


def zero_result(ctx: GradingContext, job: GradeJob, reason: str, *,
                kernel_status: str) -> GradeResult:
    """A zero on every item with one reason: the file could not be run, or grading failed."""
    items = tuple(ItemResult(name, 0.0, float(pts), False, reason)
                  for name, pts in ctx.assignment.points.items())
    execution = ExecutionResult(student=job.student, cells=(), kernel_status=kernel_status,
                                wall_s=0.0, weights_mode=ctx.weights_mode, notes=(reason,))
    return GradeResult(student=job.student, assignment_id=ctx.assignment.assignment_id, score=0.0,
                       max_score=float(sum(ctx.assignment.points.values())), items=items,
                       execution=execution)


def make_context(course: Course, assignment_id: str, *, profile_name: str, out_dir: Path,
                 weights_mode: str | None = None, need_key: bool = True,
                 gradebook: Path | None = None, grader_material: bool = True) -> GradingContext:
    """Resolve, once per batch, everything the jobs share; errors name the command that fixes them.

    ``grader_material=False``: the client of a remote grading cluster, which holds only what
    students see (the release, the public data, the weights): it neither reads nor asks for
    the answer key, the hidden split or the source notebook; the workers check their own
    (:mod:`autograder.grading.remote`)."""
    from autograder.course.datasets import grading_split_dir, student_splits_dir
    from autograder.course.standin import grader_weights
    from autograder.errors import ConfigError, DatasetError

    assignment = course.config.assignment(assignment_id)
    if not assignment.points:  # no usable notebook: say which and what to do
        assignment = replace(assignment, points=assignment_points(course, assignment))
    if profile_name not in course.config.profiles:
        raise ConfigError(f"unknown profile {profile_name!r}",
                          hint=f"use one of: {', '.join(sorted(course.config.profiles))}")
    if assignment.uses_backbone:
        mode, weights_file = grader_weights(course, mode=weights_mode)
    else:  # no ResNet50 anywhere: no weights to find, and the key says so in its name
        mode, weights_file = NO_WEIGHTS, None
    grading_dir = grading_split_dir(course)
    validation_dir = student_splits_dir(course) / "validation"
    for folder, fix in ((grading_dir, "course data build"), (validation_dir, "course data build")):
        if assignment.uses_images and grader_material and not folder.is_dir():
            raise DatasetError(f"{folder} does not exist", hint=f"run `{fix}` first")
    key = answer_key.key_path(course.root, course.config.grading.answer_key_dir, assignment_id,
                   profile_name, mode)
    ctx = GradingContext(course=course, assignment=assignment, profile_name=profile_name,
                          weights_mode=mode, weights_file=weights_file, key_file=key,
                          grading_dir=grading_dir, validation_dir=validation_dir,
                          out_dir=out_dir.resolve(),
                          gradebook=(gradebook or course.gradebook_file).resolve(),
                          item_labels=item_labels(course.release_dir(assignment_id)
                                                  / assignment.notebook),
                          template_dir=course.root / TEMPLATE_DIR,
                          pass_marks=answer_key.pass_marks(key) if grader_material else {})
    if need_key and grader_material and not ctx.key_is_current():
        what = "no answer key" if not key.is_file() else "a stale answer key (the source notebook, " \
            "profile, margin, dataset or weights changed since it was calibrated)"
        weights = f" --weights-mode {mode}" if assignment.uses_backbone else ""
        raise ConfigError(
            f"{what} for {assignment_id} ({describe_setting(profile_name, mode)}) at {key}",
            hint=f"run `course calibrate {assignment_id} --profile {profile_name}{weights}` first",
        )
    return ctx
