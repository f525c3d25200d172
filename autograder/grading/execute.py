"""Stage 1: run a submission's code cells in a sandboxed kernel, under every limit.

The only module that starts kernels. :func:`execute_submission` reads the notebook
(:mod:`autograder.grading.submission`: a :class:`~autograder.errors.SubmissionError`
when it is not one), prepares the job
folder and cgroup (:mod:`autograder.grading.sandbox`), starts an IPython kernel over
``ipc`` sockets inside bubblewrap, seeds it, runs each code cell with nbclient, runs
the export (:mod:`autograder.grading.export`) while the kernel is alive, then kills the
whole cgroup — so a double-forked ``setsid`` daemon dies with it — and copies the
exports out.

Decisions (the kernel manager, the client and their hooks: :mod:`autograder.grading.kernel`):

* Cells are matched to the release's grade_ids by ``metadata.nbgrader.grade_id`` only
  when the release knows that id and the submission uses it once; nothing security-
  relevant reads submission metadata (tags such as ``skip-execution`` are ignored).
* The kernel's own stdout/stderr file descriptors go to /dev/null: output counts only
  through the Jupyter protocol, and the grader's log cannot be flooded.

Alternatives rejected: ``nbconvert --execute`` / stock ``NotebookClient.execute`` (no
grace/kill, no byte cap, one process tree per run left to chance); a process per
cell (loses state between cells); TensorFlow imported in every kernel before the first
cell (3–5 s per zoo notebook) — instead a post-import hook seeds TensorFlow and Keras
the moment the student imports them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError

from autograder.course.config import Course
from autograder.course.settings import Assignment, Limits
from autograder.errors import SandboxUnavailable
from autograder.facts import CELL_NOT_RUN, CELL_OK, CellRun, ExecutionResult
from autograder.grading import inkernel, messages, sandbox
from autograder.grading.export import ExportedFacts, collect_exports, export_expression
from autograder.grading.kernel import (
    DropMonitor,
    GradingNotebookClient,
    InterruptIgnored,
    SandboxedKernelManager,
    grader_request,
    shutdown_kernel,
    start_kernel,
)
from autograder.grading.outcome import CellSignals, classify
from autograder.grading.submission import (
    MAX_NOTEBOOK_BYTES,
    defined_in,
    match_grade_ids,
    release_grade_ids,
)
from autograder.grading.submission import read_notebook as read_submission

# The reader's MAX_NOTEBOOK_BYTES and read_submission stay importable from here.
__all__ = ["MAX_NOTEBOOK_BYTES", "ExecutionSpec", "execute_submission", "read_submission"]

EXPORT_TIMEOUT_S = 300.0
"""The export (saving three models) gets its own time, outside the notebook budget."""
STARTUP_TIMEOUT_S = 60.0
SKIP_TAG_NEVER = "grader-" + uuid.uuid4().hex  # a tag no student can guess

_SETUP_CODE = inkernel.source("seed.py")
"""Defines ``__grader_setup(seed, env)``: seeds Python, NumPy, and TensorFlow/Keras on import."""


@dataclass(frozen=True)
class ExecutionSpec:
    """What executing one assignment's submissions needs, and nothing else of the course;
    built from the course in one place, :meth:`from_course`."""

    assignment: Assignment
    release_dir: Path
    """``course_helpers.py``, ``settings.json`` and ``data/`` for the kernel."""
    limits: Limits
    seed: int
    sandbox_user_prefix: str
    allow_unsandboxed: bool
    profile: str
    weights_mode: str
    weights_file: Path | None = None

    @classmethod
    def from_course(cls, course: Course, assignment: Assignment, *, profile: str,
                    weights_mode: str, weights_file: Path | None = None,
                    release_dir: Path | None = None) -> ExecutionSpec:
        """``release_dir`` defaults to ``release/<assignment_id>/`` of the course."""
        grading = course.config.grading
        return cls(
            assignment=assignment,
            release_dir=release_dir or course.release_dir(assignment.assignment_id),
            limits=course.config.limits, seed=grading.seed,
            sandbox_user_prefix=grading.sandbox_user_prefix,
            allow_unsandboxed=grading.allow_unsandboxed, profile=profile,
            weights_mode=weights_mode, weights_file=weights_file)


@dataclass
class _Run:
    """Mutable bookkeeping while one notebook runs; turned into frozen facts at the end."""

    cells: list[CellRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kernel_status: str = "finished"
    alive: bool = True
    stopped_at: int | None = None


@dataclass(frozen=True)
class _Job:
    """One job's sandbox: its folders, its uid (None unsandboxed) and its cgroup."""

    layout: sandbox.JobLayout
    user: sandbox.SandboxUser | None
    cgroup: sandbox.Cgroup | None
    sandboxed: bool


def execute_submission(notebook_path: Path, spec: ExecutionSpec, *, student: str, slot: int,
                       job_dir: Path) -> ExecutionResult:
    """Run the submission in slot ``slot``'s sandbox and return validated facts.

    ``job_dir`` must be a fresh folder the grader owns (it is created, and emptied if it
    exists); the validated exports end up in ``job_dir/out``.
    Raises :class:`SubmissionError` for a file that is not a notebook and
    :class:`SandboxUnavailable` when the sandbox is incomplete and not explicitly waived.
    """
    started = time.monotonic()
    nb = read_submission(notebook_path)
    limits = spec.limits
    grade_ids = match_grade_ids(nb, release_grade_ids(spec.release_dir / spec.assignment.notebook))

    # One probe decides: re-probing after a failure could pass and leave `sandboxed` False,
    # which would run the student's code without the sandbox (found by the hostile zoo).
    missing = sandbox.probe_sandbox(prefix=spec.sandbox_user_prefix, slots=slot + 1)
    if missing and not spec.allow_unsandboxed:
        sandbox.refuse_incomplete(missing)
    sandboxed = not missing
    user = sandbox.find_sandbox_user(spec.sandbox_user_prefix, slot) if sandboxed else None

    layout = sandbox.JobLayout.for_job(Path(job_dir).resolve(),
                                       name=f"{slot}-{uuid.uuid4().hex[:12]}")
    sandbox.prepare_job_dir(layout, user=user, disk_mb=limits.disk_mb, export_mb=limits.export_mb)
    cgroup: sandbox.Cgroup | None = None
    try:
        cgroup = _create_cgroup(student, limits, sandboxed=sandboxed)
        job = _Job(layout, user, cgroup, sandboxed)
        run, facts = _run_job(job, nb, notebook_path, spec, grade_ids)
    finally:
        if cgroup is not None:
            cgroup.remove()
        sandbox.release_job_dir(layout)
    if not sandboxed:
        run.notes.insert(0, messages.UNSANDBOXED)
    executed = [(c.index, "".join(nb.cells[c.index].source)) for c in run.cells
                if c.status != CELL_NOT_RUN]
    names = {}
    if facts is not None:
        names = defined_in(executed, {*facts.answers, *facts.models, *facts.histories})
    return ExecutionResult(
        student=student, cells=tuple(run.cells), kernel_status=run.kernel_status,
        wall_s=round(time.monotonic() - started, 3),
        answers=facts.answers if facts else {}, answer_errors=facts.answer_errors if facts else {},
        models=facts.models if facts else {}, histories=facts.histories if facts else {},
        defined_in=names, sandboxed=sandboxed, weights_mode=spec.weights_mode,
        notes=tuple(run.notes),
    )


def _create_cgroup(student: str, limits: Limits, *, sandboxed: bool) -> sandbox.Cgroup | None:
    """The job's cgroup; None only when running unsandboxed on a machine without one."""
    try:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", student)[:40]  # ids come from folder names
        return sandbox.create_cgroup(f"{safe}-{uuid.uuid4().hex[:8]}",
                                     memory_mb=limits.memory_mb,
                                     max_processes=limits.max_processes)
    except SandboxUnavailable:
        if sandboxed:
            raise
        return None


def _run_job(job: _Job, nb: nbformat.NotebookNode, notebook_path: Path, spec: ExecutionSpec,
             grade_ids: dict[int, str]) -> tuple[_Run, ExportedFacts | None]:
    """Stage the job, run the notebook and its export, kill the cgroup, collect the exports
    (None when the kernel did not live to the end of the export)."""
    layout, weights_file = job.layout, spec.weights_file
    inside = _paths(layout, sandboxed=job.sandboxed)
    _stage_files(layout, notebook_path, spec.release_dir, user=job.user, sandboxed=job.sandboxed)
    env = sandbox.kernel_environment(
        work_dir=inside["work"], tmp_dir=inside["tmp"],
        extra={"COURSE_PROFILE": spec.profile, "COURSE_WEIGHTS_MODE": spec.weights_mode,
               "COURSE_DATA_DIR": inside["data"], "PYTHONHASHSEED": str(spec.seed),
               "COURSE_SEED": str(spec.seed),
               **({"COURSE_WEIGHTS_DIR": inside["weights"]} if weights_file else {})})
    ro_binds = _ro_binds(layout, spec.release_dir, weights_file) if job.sandboxed else []
    run = asyncio.run(_run_notebook(nb, job, spec, env=env, ro_binds=ro_binds,
                                    grade_ids=grade_ids, export_dir=inside["export"]))
    if job.cgroup is not None:
        job.cgroup.kill_all()  # nothing of the student's may run while we read its files
    if not run.alive:
        return run, None
    # the export finished while the kernel lived
    facts = collect_exports(layout.export, layout.out, assignment=spec.assignment,
                            export_mb=spec.limits.export_mb)
    run.notes.extend(facts.notes)
    return run, facts


def _paths(layout: sandbox.JobLayout, *, sandboxed: bool) -> dict[str, str]:
    """Folders as the kernel sees them."""
    if sandboxed:
        return {"work": sandbox.INSIDE_WORK, "tmp": sandbox.INSIDE_TMP,
                "export": sandbox.INSIDE_EXPORT, "data": f"{sandbox.INSIDE_WORK}/data",
                "weights": sandbox.INSIDE_WEIGHTS}
    return {"work": str(layout.work), "tmp": str(layout.tmp), "export": str(layout.export),
            "data": str(layout.work / "data"), "weights": str(layout.job_dir / "weights")}


def _stage_files(layout: sandbox.JobLayout, notebook: Path, release: Path, *,
                 user: sandbox.SandboxUser | None, sandboxed: bool) -> None:
    """The scratch copy of the submission (and, unsandboxed, copies of the release files)."""
    target = layout.work / "submission.ipynb"
    shutil.copyfile(notebook, target)
    if user is not None:
        os.chown(target, user.uid, user.gid)
    if not sandboxed:
        for name in ("course_helpers.py", "settings.json"):
            if (release / name).is_file():
                shutil.copyfile(release / name, layout.work / name)
        if (release / "data").is_dir():
            os.symlink(release / "data", layout.work / "data")


def _ro_binds(layout: sandbox.JobLayout, release: Path,
              weights_file: Path | None) -> list[tuple[Path, str]]:
    binds = []
    for name in ("course_helpers.py", "settings.json", "data"):
        if (release / name).exists():
            source = sandbox.stage_readonly(layout, release / name)
            binds.append((source, f"{sandbox.INSIDE_WORK}/{name}"))
    if weights_file is not None and weights_file.is_file():
        source = sandbox.stage_readonly(layout, weights_file)
        binds.append((source, f"{sandbox.INSIDE_WEIGHTS}/{weights_file.name}"))
    return binds


async def _run_notebook(nb: nbformat.NotebookNode, job: _Job, spec: ExecutionSpec, *,
                        env: dict[str, str], ro_binds: list[tuple[Path, str]],
                        grade_ids: dict[int, str], export_dir: str) -> _Run:
    """Start the job's kernel, seed it, run the cells and the export; always shut down."""
    limits = spec.limits
    km = _kernel_manager(job, env=env, ro_binds=ro_binds, limits=limits)
    client = GradingNotebookClient(
        nb, km=km, allow_errors=True, interrupt_on_timeout=True, iopub_timeout=2,
        startup_timeout=int(STARTUP_TIMEOUT_S), skip_cells_with_tag=SKIP_TAG_NEVER,
        record_timing=False, store_widget_state=False)
    client.configure(output_bytes=limits.output_bytes)
    run = _Run()
    process = await start_kernel(km, env=env, cwd=job.layout.job_dir)
    if job.cgroup is not None and process is not None:
        job.cgroup.leader_pid = process.pid  # sh -> prlimit -> setpriv -> bwrap: one pid
    monitor: DropMonitor | None = None
    try:
        await client.async_start_new_kernel_client()
        if job.sandboxed:
            sandbox.seal_conn_dir(job.layout)
        monitor = DropMonitor(client.kc)
        setup = f"{_SETUP_CODE}\n__grader_setup({spec.seed!r}, {env_subset(env)!r})\ndel __grader_setup\n"
        reply = await grader_request(client, setup, timeout_s=STARTUP_TIMEOUT_S)
        if reply is None:
            raise SandboxUnavailable("the kernel did not finish the grader's setup",
                                     hint="run `course sandbox check`")
        await _run_cells(client, nb, run, limits=limits, cgroup=job.cgroup, grade_ids=grade_ids,
                         monitor=monitor)
        if run.alive:
            await _export(client, run, expr=export_expression(spec.assignment,
                                                              export_dir=export_dir))
        else:
            run.notes.append(messages.EXPORT_LOST.format(cell=run.stopped_at + 1))
    finally:
        if monitor is not None:
            monitor.close()
        if job.cgroup is not None:
            job.cgroup.kill_all()
        await shutdown_kernel(km, client, process)
    return run


def _kernel_manager(job: _Job, *, env: dict[str, str], ro_binds: list[tuple[Path, str]],
                    limits: Limits) -> SandboxedKernelManager:
    """A kernel manager for the job: its command wrapped in the sandbox argv (or, unsandboxed,
    in the cgroup and prlimit only), its connection files in the job's conn folder."""
    layout, user, cgroup = job.layout, job.user, job.cgroup

    def wrap(argv: list[str]) -> list[str]:
        if job.sandboxed and user is not None:
            return sandbox.build_sandbox_argv(argv, user=user, layout=layout, ro_binds=ro_binds,
                                              env=env, cgroup=cgroup,
                                              file_size_mb=limits.file_size_mb)
        prefix = cgroup.join_prefix() if cgroup is not None else []
        return [*prefix, "prlimit", f"--fsize={limits.file_size_mb * 2**20}", "--core=0",
                "--", *argv]

    km = SandboxedKernelManager(transport="ipc", ip=str(layout.conn / "kernel"),
                                connection_file=str(layout.conn / "kernel.json"))
    km.configure(wrap=wrap, owner=user, max_message_bytes=limits.output_bytes + 2**20)
    return km


async def _export(client: GradingNotebookClient, run: _Run, *, expr: str) -> None:
    """Evaluate the export expression; a failure is a note and loses the kernel's answers."""
    reply = await grader_request(client, "", timeout_s=EXPORT_TIMEOUT_S,
                                 user_expressions={"export": expr})
    result = (reply or {}).get("content", {}).get("user_expressions", {}).get("export", {})
    if result.get("status") != "ok":
        why = "the export did not finish" if reply is None else \
            f"{result.get('ename', 'error')}: {str(result.get('evalue', ''))[:200]}"
        run.notes.append(messages.EXPORT_FAILED.format(reason=why))
        run.alive = False


def env_subset(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("COURSE_")}


async def _run_cells(client: GradingNotebookClient, nb: nbformat.NotebookNode, run: _Run, *,
                     limits: Limits, cgroup: sandbox.Cgroup | None, grade_ids: dict[int, str],
                     monitor: DropMonitor) -> None:
    budget_end = time.monotonic() + limits.notebook_budget_s
    executed = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = grade_ids.get(index)
        if run.stopped_at is not None:
            run.cells.append(CellRun(index, grade_id, CELL_NOT_RUN, 0.0, message=
                                     messages.CELL_NOT_RUN_AFTER.format(cell=run.stopped_at + 1)))
            continue
        if not cell.source.strip():
            run.cells.append(CellRun(index, grade_id, CELL_OK, 0.0))
            continue
        executed += 1
        signals, runtime = await _run_cell(client, cell, index, executed, limits=limits,
                                           cgroup=cgroup, monitor=monitor,
                                           remaining=budget_end - time.monotonic())
        outcome = classify(signals, limits, cell=index)
        if outcome.lost:
            run.alive = False
        if outcome.stops:
            run.stopped_at = index
        if outcome.kernel_status is not None:
            run.kernel_status = outcome.kernel_status
        run.notes.extend(outcome.notes)
        run.cells.append(CellRun(index, grade_id, outcome.status, runtime, outcome.limit,
                                 outcome.message))


async def _run_cell(client: GradingNotebookClient, cell: nbformat.NotebookNode, index: int,
                    count: int, *, limits: Limits, cgroup: sandbox.Cgroup | None,
                    monitor: DropMonitor, remaining: float) -> tuple[CellSignals, float]:
    """Run one cell under its timeout (cut to what is left of the budget) and observe it;
    a lost kernel's cgroup is killed before its end is read."""
    budget_bound = remaining < limits.cell_timeout_s
    client.timeout = max(1, int(min(limits.cell_timeout_s, remaining) + 0.999))
    client.begin_cell()
    before = cgroup.read_events() if cgroup else sandbox.CgroupEvents()
    t0 = time.monotonic()
    died = ignored = False
    try:
        await client.async_execute_cell(cell, index, execution_count=count)
    except DeadKernelError:
        died = True
    except InterruptIgnored:
        ignored = True
    runtime = round(time.monotonic() - t0, 3)
    after = cgroup.read_events() if cgroup else sandbox.CgroupEvents()
    oom = after.oom_kills > before.oom_kills
    if (died or ignored) and cgroup is not None:
        cgroup.kill_all()
    return CellSignals(
        died=died, ignored=ignored, timed_out=client.timed_out, budget_bound=budget_bound,
        oom=oom, pids_hit=after.pids_max_hits > before.pids_max_hits, error=client.last_error,
        output_cut=client.output_cut,
        # Drained either way; classify() ignores a drop once the kernel is lost.
        dropped=monitor.dropped() > 0,
        died_how=client.death_reason() if died and not oom else "",
    ), runtime
