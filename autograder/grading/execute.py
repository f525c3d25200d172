"""Stage 1: run a submission's code cells in a sandboxed kernel, under every limit.

The only module that starts kernels. :func:`execute_submission` takes a submission read
once (:mod:`autograder.grading.submission`), prepares the job folder
(:mod:`autograder.grading.stage`) and cgroup (:mod:`autograder.grading.sandbox`), starts an
IPython kernel over ``ipc`` sockets inside bubblewrap, seeds it, runs each code cell with
nbclient, runs the export (:mod:`autograder.grading.export`) while the kernel is alive,
then kills the whole cgroup — so a double-forked ``setsid`` daemon dies with it — and
copies the exports out, validated, into the facts folder the checker reads. A kernel lost
mid-notebook gets the cells before the loss replayed in a fresh kernel.

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
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError

from autograder.cgroups import Cgroup, CgroupEvents
from autograder.course.config import Course
from autograder.course.settings import Assignment, Limits
from autograder.errors import SandboxUnavailable
from autograder.facts import CELL_NOT_RUN, CELL_OK, CellRun, ExecutionResult
from autograder.grading import inkernel, messages, sandbox, stage
from autograder.grading.export import (
    ExportedFacts,
    TakenModels,
    collect_exports,
    export_expression,
    take_complete_models,
    write_facts,
)
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
from autograder.grading.sandbox_users import SandboxUser, find_sandbox_user
from autograder.grading.submission import Submission, match_grade_ids, release_grade_ids

EXPORT_TIMEOUT_S = 300.0
"""The export (saving three models) gets its own time, outside the notebook budget."""
STARTUP_TIMEOUT_S = 60.0
TAKE_POLL_S = 0.05
"""How often the grader looks for model files the export has finished, while it runs."""

ModelReady = Callable[[str, Path], None]
"""Told each model file taken while the export ran: its name and the grader's copy, which is
final (see :func:`autograder.grading.export.take_complete_models`)."""
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
    release_grade_ids: frozenset[str] = frozenset()
    """The release notebook's grade_ids, read once: a submission's cell counts as a graded
    cell only under one of these."""
    gpu: bool = False
    """The sandbox gets the host's GPU device nodes (``Assignment.grades_on_gpu``)."""

    @classmethod
    def from_course(cls, course: Course, assignment: Assignment, *, profile: str,
                    weights_mode: str, weights_file: Path | None = None,
                    release_dir: Path | None = None) -> ExecutionSpec:
        """``release_dir`` defaults to ``release/<assignment_id>/`` of the course."""
        grading = course.config.grading
        release_dir = release_dir or course.release_dir(assignment.assignment_id)
        return cls(
            assignment=assignment, release_dir=release_dir,
            limits=course.config.limits, seed=grading.seed,
            sandbox_user_prefix=grading.sandbox_user_prefix,
            allow_unsandboxed=grading.allow_unsandboxed, profile=profile,
            weights_mode=weights_mode, weights_file=weights_file,
            release_grade_ids=frozenset(release_grade_ids(release_dir / assignment.notebook)),
            gpu=assignment.grades_on_gpu(grading))


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

    layout: stage.JobLayout
    user: SandboxUser | None
    cgroup: Cgroup | None
    sandboxed: bool
    devices: tuple[tuple[Path, str], ...] = ()
    """Device nodes the sandbox passes through (the GPU's, when the assignment grades on one)."""


def execute_submission(submission: Submission, spec: ExecutionSpec, *, student: str, slot: int,
                       job_dir: Path, on_model: ModelReady | None = None) -> ExecutionResult:
    """Run the submission in slot ``slot``'s sandbox and return validated facts.

    ``job_dir`` must be a fresh folder the grader owns (it is created, and emptied if it
    exists); the validated exports end up in ``job_dir/out`` (``facts_dir``). When the kernel
    was lost at cell k (it died, ran out of memory, ignored an interrupt), the cells before k
    run again in a fresh sandboxed kernel (``job_dir`` + ``-replay``), so the crash costs only
    the items that needed cell k or later; the result says so (``replayed_before``).
    ``on_model`` is told of each model file as soon as the export has finished writing it (the
    checker starts loading it); a model it was told of counts only if it is in the result's
    ``models`` under the same path.
    Raises :class:`SandboxUnavailable` when the sandbox is incomplete and not explicitly waived.
    """
    first, lost_at = _execute_once(submission, spec, student=student, slot=slot, job_dir=job_dir,
                                   on_model=on_model)
    ran_before = lost_at is not None and first.kernel_status in LOST_KERNEL and any(
        c.index < lost_at and c.status != CELL_NOT_RUN for c in first.cells)
    if not ran_before:
        if lost_at is not None:
            return replace(first, notes=(*first.notes,
                                         messages.EXPORT_LOST.format(cell=lost_at + 1)))
        return first
    replay_dir = job_dir.with_name(job_dir.name + "-replay")
    head = submission.first_cells(lost_at, path=replay_dir.parent / f"{replay_dir.name}.ipynb")
    replay, _ = _execute_once(head, spec, student=student, slot=slot, job_dir=replay_dir,
                              on_model=on_model)
    return replace(
        first, answers=replay.answers, answer_errors=replay.answer_errors, models=replay.models,
        histories=replay.histories, defined_in=replay.defined_in, facts_dir=replay.facts_dir,
        replayed_before=lost_at,
        notes=(*first.notes, messages.REPLAYED.format(cell=lost_at + 1, last=lost_at)))


LOST_KERNEL = ("killed", "died", "oom")
"""Kernel endings that lose the kernel's state mid-notebook (not the budget running out):
the cells before the loss are worth a replay."""


def _execute_once(submission: Submission, spec: ExecutionSpec, *, student: str, slot: int,
                  job_dir: Path, on_model: ModelReady | None = None
                  ) -> tuple[ExecutionResult, int | None]:
    """One run in a fresh sandboxed kernel, and the cell index at which the kernel was lost
    before the export (None when it lived to export)."""
    started = time.monotonic()
    nb, limits = submission.notebook, spec.limits
    grade_ids = match_grade_ids(nb, spec.release_grade_ids)

    # One probe decides: re-probing after a failure could pass and leave `sandboxed` False,
    # which would run the student's code without the sandbox (found by the hostile zoo).
    missing = sandbox.probe_sandbox(prefix=spec.sandbox_user_prefix, slots=slot + 1)
    if missing and not spec.allow_unsandboxed:
        sandbox.refuse_incomplete(missing)
    sandboxed = not missing
    user = find_sandbox_user(spec.sandbox_user_prefix, slot) if sandboxed else None
    devices = tuple(sandbox.gpu_devices()) if spec.gpu and sandboxed else ()

    layout = stage.JobLayout.for_job(Path(job_dir).resolve(),
                                     name=f"{slot}-{uuid.uuid4().hex[:12]}")
    if user is not None:  # the caller holds this slot: anything running as its uid is left over
        sandbox.kill_leftovers(user.uid)
    stage.prepare_job_dir(layout, user=user, disk_mb=limits.disk_mb, export_mb=limits.export_mb)
    cgroup: Cgroup | None = None
    try:
        cgroup = _create_cgroup(student, limits, sandboxed=sandboxed)
        job = _Job(layout, user, cgroup, sandboxed, devices)
        run, facts = _run_job(job, submission, spec, grade_ids, on_model=on_model)
    finally:
        if cgroup is not None:
            cgroup.remove()
        stage.release_job_dir(layout)
    if not sandboxed:
        run.notes.insert(0, messages.UNSANDBOXED)
    if facts is None:  # nothing came out of the kernel: every name is missing
        facts = ExportedFacts()
        write_facts(facts, layout.out)
        lost_at = run.stopped_at
    else:
        lost_at = None
    executed = [c.index for c in run.cells if c.status != CELL_NOT_RUN]
    return ExecutionResult(
        student=student, cells=tuple(run.cells), kernel_status=run.kernel_status,
        wall_s=round(time.monotonic() - started, 3),
        answers=facts.answers, answer_errors=facts.answer_errors, models=facts.models,
        histories=facts.histories,
        defined_in=submission.defined_in(executed, {*facts.answers, *facts.models,
                                                    *facts.histories}),
        facts_dir=layout.out, sandboxed=sandboxed, weights_mode=spec.weights_mode,
        notes=tuple(run.notes),
    ), lost_at


def _create_cgroup(student: str, limits: Limits, *, sandboxed: bool) -> Cgroup | None:
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


def _run_job(job: _Job, submission: Submission, spec: ExecutionSpec,
             grade_ids: dict[int, str], *, on_model: ModelReady | None = None
             ) -> tuple[_Run, ExportedFacts | None]:
    """Stage the job, run the notebook and its export, kill the cgroup, collect the exports
    (None when the kernel did not live to the end of the export: then the model files taken
    while it exported are deleted too)."""
    layout, weights_file = job.layout, spec.weights_file
    inside = stage.inside_paths(layout, sandboxed=job.sandboxed)
    stage.stage_files(layout, submission.path, spec.release_dir, user=job.user,
                      sandboxed=job.sandboxed)
    env = sandbox.kernel_environment(
        work_dir=inside["work"], tmp_dir=inside["tmp"],
        extra={"COURSE_PROFILE": spec.profile, "COURSE_WEIGHTS_MODE": spec.weights_mode,
               "COURSE_DATA_DIR": inside["data"], "PYTHONHASHSEED": str(spec.seed),
               "COURSE_SEED": str(spec.seed),
               **({"COURSE_WEIGHTS_DIR": inside["weights"]} if weights_file else {}),
               **(sandbox.gpu_environment() if job.devices else {})})
    ro_binds = stage.readonly_binds(layout, spec.release_dir, weights_file) if job.sandboxed else []
    taken = TakenModels()
    taker = _ModelTaker(layout, spec, taken, on_model) if on_model is not None else None
    run = asyncio.run(_run_notebook(submission.notebook, job, spec, env=env, ro_binds=ro_binds,
                                    grade_ids=grade_ids, export_dir=inside["export"],
                                    taker=taker))
    if job.cgroup is not None:
        job.cgroup.kill_all()  # nothing of the student's may run while we read its files
    if not run.alive:
        taken.discard()
        return run, None
    # the export finished while the kernel lived
    facts = collect_exports(layout.export, layout.out, assignment=spec.assignment,
                            export_mb=spec.limits.export_mb, taken=taken)
    run.notes.extend(facts.notes)
    return run, facts


async def _run_notebook(nb: nbformat.NotebookNode, job: _Job, spec: ExecutionSpec, *,
                        env: dict[str, str], ro_binds: list[tuple[Path, str]],
                        grade_ids: dict[int, str], export_dir: str,
                        taker: _ModelTaker | None = None) -> _Run:
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
            stage.seal_conn_dir(job.layout)
        monitor = DropMonitor(client.kc)
        setup = f"{_SETUP_CODE}\n__grader_setup({spec.seed!r}, {env_subset(env)!r})\ndel __grader_setup\n"
        reply = await grader_request(client, setup, timeout_s=STARTUP_TIMEOUT_S)
        if reply is None:
            raise SandboxUnavailable("the kernel did not finish the grader's setup",
                                     hint="run `course sandbox check`")
        await _run_cells(client, nb, run, limits=limits, cgroup=job.cgroup, grade_ids=grade_ids,
                         monitor=monitor)
        if run.alive:
            if taker is not None:
                taker.start()
            try:
                await _export(client, run, expr=export_expression(spec.assignment,
                                                                  export_dir=export_dir))
            finally:
                if taker is not None:
                    await asyncio.to_thread(taker.stop)
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
                                              file_size_mb=limits.file_size_mb,
                                              devices=job.devices)
        prefix = cgroup.join_prefix() if cgroup is not None else []
        return [*prefix, "prlimit", f"--fsize={limits.file_size_mb * 2**20}", "--core=0",
                "--", *argv]

    km = SandboxedKernelManager(transport="ipc", ip=str(layout.conn / "kernel"),
                                connection_file=str(layout.conn / "kernel.json"))
    km.configure(wrap=wrap, owner=user, max_message_bytes=limits.output_bytes + 2**20)
    return km


class _ModelTaker:
    """While the export runs: a thread that takes each model file the kernel has finished
    (:func:`take_complete_models`) and tells ``on_model``, so the checker loads the largest model
    while the kernel still writes the others (issue 12). :meth:`stop` returns once it has
    stopped; nothing is taken after that."""

    def __init__(self, layout: stage.JobLayout, spec: ExecutionSpec, taken: TakenModels,
                 on_model: ModelReady) -> None:
        self._layout, self._spec, self._taken, self._on_model = layout, spec, taken, on_model
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="take-models", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(TAKE_POLL_S):
            for name in take_complete_models(self._layout.export, self._layout.out,
                                             assignment=self._spec.assignment,
                                             export_mb=self._spec.limits.export_mb,
                                             taken=self._taken):
                try:
                    self._on_model(name, self._taken.files[name][0])
                except Exception:  # the checker is told or not; the grade never depends on it
                    pass


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
                     limits: Limits, cgroup: Cgroup | None, grade_ids: dict[int, str],
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
                    count: int, *, limits: Limits, cgroup: Cgroup | None,
                    monitor: DropMonitor, remaining: float) -> tuple[CellSignals, float]:
    """Run one cell under its timeout (cut to what is left of the budget) and observe it;
    a lost kernel's cgroup is killed before its end is read."""
    budget_bound = remaining < limits.cell_timeout_s
    client.timeout = max(1, int(min(limits.cell_timeout_s, remaining) + 0.999))
    client.begin_cell()
    before = cgroup.read_events() if cgroup else CgroupEvents()
    t0 = time.monotonic()
    died = ignored = False
    try:
        await client.async_execute_cell(cell, index, execution_count=count)
    except DeadKernelError:
        died = True
    except InterruptIgnored:
        ignored = True
    runtime = round(time.monotonic() - t0, 3)
    after = cgroup.read_events() if cgroup else CgroupEvents()
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
