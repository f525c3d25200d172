"""Stage 3: run the rubric (pytest) or the fact sheet in a clean, separate process.

The process never executes student code: it reads exported files and loads
models with ``safe_mode=True``. It is still confined: as root it runs in its own
network namespace (no network at all) as the unprivileged ``nobody`` user, with
HOME and Keras' cache in a private temporary folder, so a crafted model file that
found a bug in a loader could neither phone home nor write the gradebook.

Rejected: running the rubric inside the student's kernel (nbgrader's way; every
check there can be monkeypatched), and pytest in the grader's own process (one
bad model file would take the whole batch down).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from autograder import reach
from autograder.cgroups import Cgroup
from autograder.course.permissions import NOBODY_UID
from autograder.course.settings import Limits
from autograder.errors import GradingError, SandboxUnavailable
from autograder.grading import embeddings
from autograder.grading.evidence import DONE_ENV, WAIT_ENV, CheckInputs

CHECK_TIMEOUT_S = 900
CHECK_TMP_MB = 1024
"""The checker's own temporary space (a tmpfs of this size when run as root): a crafted
``.keras`` file that makes a loader leave files behind fills this, never the host's /tmp."""

# Mount the size-capped tmpfs in the checker's private mount namespace, enter it, then run
# the rest of the command line (setpriv ... python ...).
_WITH_TMPFS = ('mount -t tmpfs -o "size=$1,mode=0700,uid={uid},gid={uid},nosuid,nodev" '
               'course-check-tmp "$2" && cd "$2" && shift 2 && exec "$@"')


def rubric_argv(rubric_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "pytest", str(rubric_dir), "-q", "-p", "no:cacheprovider",
        "-p", "autograder.grading.rubric_plugin", "-c", os.devnull, "--strict-markers",
        "--rootdir", str(rubric_dir), "--import-mode=importlib", "-o", "console_output_style=classic",
        "--durations=8", "--durations-min=0.5",  # in the staff-only grader.log
    ]


def run_rubric(inputs: CheckInputs, *, rubric_dir: Path, timeout_s: float = CHECK_TIMEOUT_S,
               limits: Limits | None = None) -> tuple[dict[str, Any], str]:
    """Run ``rubric_dir``'s tests; returns ``{"items": per-item records, "summaries": layer
    tables of the models it loaded}`` (empty when the checker died) and its log tail.
    ``limits``: the memory and tasks the checker may use (a cgroup, as root).

    Raises :class:`GradingError` when a rubric test declares a marker value the plugin does
    not know (the message names the file and the test): such a rubric grades nobody."""
    records, log, _ = judge(inputs, rubric_dir=rubric_dir, timeout_s=timeout_s, limits=limits)
    return records, log


def judge(inputs: CheckInputs, *, rubric_dir: Path, timeout_s: float = CHECK_TIMEOUT_S,
          limits: Limits | None = None) -> tuple[dict[str, Any], str, Stopped | None]:
    """:func:`run_rubric`, and why the checker ended without a report (None when it wrote
    one)."""
    records, log, stopped = _finish(_start(rubric_argv(rubric_dir), inputs,
                                           also_reach=[rubric_dir], limits=limits),
                                    timeout_s=timeout_s)
    return (*_rubric_result(records, log), stopped)


def _rubric_result(records: dict[str, Any], log: str) -> tuple[dict[str, Any], str]:
    errors = records.get("rubric_errors")
    if errors:
        raise GradingError("; ".join(e["message"] for e in errors), hint=errors[0].get("hint"))
    return records, log


class StartedRubric:
    """A confined rubric run started before the submission's facts exist (issue 12: the
    checker's imports and the trusted data it loads, seconds of a submission's grading,
    overlap the notebook's run instead of following it).

    The checker warms up (imports TensorFlow and Keras, reads the answer key and the hidden
    splits the rubric's tests ask for), then blocks reading a pipe that only the grader holds
    (pytest's capture takes standard input, so the pipe has its own descriptor, named by
    :data:`WAIT_ENV`); nothing of the submission is read before the grader writes there: a
    model file the export finished (:meth:`offer_model`, loaded at once), then the facts folder
    (:meth:`finish`). :meth:`cancel` (a submission that never ran) kills it."""

    def __init__(self, inputs: CheckInputs, *, rubric_dir: Path, reach: Sequence[Path] = (),
                 limits: Limits | None = None) -> None:
        self._offered: dict[str, Path] = {}
        self._waiter: threading.Thread | None = None
        self._log = ""
        self._stopped: Stopped | None = None
        read_end, self._go = os.pipe()
        self._done, done_end = os.pipe()
        # Only a root grader can give the priority back in finish(); any other keeps its own.
        self._niced = os.geteuid() == 0
        try:
            self._run = _start(rubric_argv(rubric_dir), inputs, also_reach=[rubric_dir, *reach],
                               extra_env={WAIT_ENV: str(read_end), DONE_ENV: str(done_end)},
                               pass_fds=(read_end, done_end),
                               niceness=WAITING_NICENESS if self._niced else 0, limits=limits)
        except BaseException:
            os.close(self._go)
            os.close(self._done)
            raise
        finally:
            os.close(read_end)
            os.close(done_end)

    def offer_model(self, name: str, path: Path) -> None:
        """Before :meth:`finish`: model ``name`` of the facts to come is the file ``path``, final
        and readable by the checker, which starts loading it now (issue 12: ft_model's load then
        overlaps the export of the other models). Best effort: a checker that is gone is not
        told, and loads the file when it judges."""
        if self._go < 0:
            return
        self._offered[name] = path
        try:
            os.write(self._go, (json.dumps({"model": name, "file": str(path)}) + "\n").encode())
        except OSError:
            pass

    def finish(self, facts_dir: Path, *, models: dict[str, Path] | None = None,
               timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, Any]:
        """Judge the facts in ``facts_dir`` (under a folder given as ``reach``, or reachable
        anyway); the records as :func:`run_rubric` gives them, with ``timeout_s`` counted from
        now, returned as soon as the report is written (the checker then still prints its
        summary and exits: :meth:`log` waits for that). ``models``: the facts' model files by
        name; of the models offered, only those still at the same path there are judged from the
        early load (``early`` in the message), the rest from the facts folder."""
        early = sorted(name for name, path in self._offered.items()
                       if (models or {}).get(name) == path)
        go = (json.dumps({"facts_dir": str(facts_dir), "early": early}) + "\n").encode()
        if self._niced:
            restore_priority(self._run.proc.pid)
        try:
            os.write(self._go, go)
        except BrokenPipeError:  # it died while waiting: its log says why
            pass
        finally:
            os.close(self._go)
            self._go = -1
        self._waiter = threading.Thread(target=self._wait, args=(timeout_s,), name="checker-exit",
                                        daemon=True)
        self._waiter.start()
        try:  # closed by the checker once its report is written, or by its exit
            select.select([self._done], [], [], timeout_s)
        finally:
            os.close(self._done)
            self._done = -1
        report = self._run.report
        return _rubric_result(json.loads(report.read_text()) if report.is_file() else {}, "")[0]

    def _wait(self, timeout_s: float) -> None:
        self._log, self._stopped = _await_exit(self._run, timeout_s)

    def stopped(self) -> Stopped | None:
        """After :meth:`finish`: why the checker ended without writing its report (it ran out
        of memory or time, or crashed); None when it wrote one. Waits for it to exit."""
        self.log()
        return self._stopped

    def add_to_log(self, text: str) -> None:
        """Append ``text`` to what :meth:`log` returns (a second run's log, after this one)."""
        self.log()
        self._log += text

    @property
    def finished(self) -> bool:
        """:meth:`finish` was called: its log is (or will be) there."""
        return self._waiter is not None

    def log(self) -> str:
        """The tail of the checker's output (for the staff-only grader.log), once it has exited;
        empty before :meth:`finish`."""
        if self._waiter is not None:
            self._waiter.join()
        return self._log

    def cancel(self) -> None:
        for fd in (self._go, self._done):
            if fd >= 0:
                os.close(fd)
        self._go = self._done = -1
        if self._waiter is not None:  # finished: it exits by itself, or dies at its time-out
            if self._run.proc.returncode is None:
                self._run.proc.kill()
            self._waiter.join()
        _cancel(self._run)


WAITING_NICENESS = 19
"""The niceness a checker started early warms up at (when the grader runs as root): its imports
and trusted data (seconds of CPU) then take the CPU the notebook leaves idle instead of slowing
the notebook's cells down (issue 12: on two cores, a warm-up that also ran a ResNet50, at the
notebook's priority, stretched the cells by 4.4 s; niced, by nothing measurable).
:meth:`StartedRubric.finish` gives it back priority 0 before it judges, so judging never waits
behind another submission's notebook."""


def _set_group_niceness(pid: int, niceness: int) -> None:
    """The niceness of the autogroup of ``pid`` (a session of its own, see :func:`_start`).
    Where the kernel groups processes by session (``sched_autogroup_enabled``, as on this
    machine), sessions share the CPU as equals whatever their threads' niceness, and the
    sandboxed kernel has a session of its own: the group's niceness is what lets the notebook
    go first. Best effort: a kernel without autogroups has no such file."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))
    except OSError:
        pass


def restore_priority(pid: int) -> None:
    """Priority back to normal for process ``pid``: its autogroup's niceness 0, and niceness 0
    for every thread (a Linux thread has its own, and TensorFlow's worker threads took the
    niceness of the thread that started them); threads started while this runs are caught by
    the next pass. Needs root; a process that is gone is left alone."""
    _set_group_niceness(pid, 0)
    for _ in range(3):
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except FileNotFoundError:
            return
        changed = False
        for tid in threads:
            try:
                if os.getpriority(os.PRIO_PROCESS, tid) != 0:
                    os.setpriority(os.PRIO_PROCESS, tid, 0)
                    changed = True
            except ProcessLookupError:  # a thread that just ended
                pass
        if not changed:
            return


def start_rubric(inputs: CheckInputs, *, rubric_dir: Path, reach: Sequence[Path] = (),
                 limits: Limits | None = None) -> StartedRubric:
    return StartedRubric(inputs, rubric_dir=rubric_dir, reach=reach, limits=limits)


def run_factsheet(inputs: CheckInputs, *, answer_names: list[str], model_names: list[str],
                  accuracy_inputs: dict[str, str], backbone: bool,
                  timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, Any]:
    """The fact sheet of one reference run (:func:`autograder.grading.factsheet.measure`)."""
    argv = [sys.executable, "-m", "autograder.grading.factsheet"]
    extra = {"COURSE_FACTSHEET_NAMES": json.dumps({
        "answers": answer_names, "models": model_names, "accuracy_inputs": accuracy_inputs,
        "backbone": backbone})}
    records, log = _run_confined(argv, inputs, timeout_s=timeout_s, extra_env=extra)
    if not records:
        raise GradingError(f"the fact sheet produced nothing; its log ends with:\n{log}",
                           hint="run the reference notebook by hand to see what breaks")
    return records


def run_embeddings(inputs: CheckInputs, *, timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, bytes]:
    """Run the trusted backbone over both hidden splits in the checker's confinement; returns
    the files of an embeddings cache (see :mod:`autograder.grading.embeddings`) by name."""
    wanted = embeddings.cache_files()
    argv = [sys.executable, "-m", "autograder.grading.trusted"]
    keep: dict[str, bytes] = {}

    def collect(private: Path) -> None:
        for name in wanted:
            if (private / name).is_file():
                keep[name] = (private / name).read_bytes()

    _, log = _run_confined(argv, inputs, timeout_s=timeout_s, before_cleanup=collect)
    if len(keep) != len(wanted):
        raise GradingError(f"embedding the hidden splits failed; the log ends with:\n{log}",
                           hint="check the weights with `course weights status`")
    return keep


def _input_paths(inputs: CheckInputs) -> list[Path]:
    return [p for p in (inputs.facts_dir, inputs.key_file, inputs.grading_dir,
                        inputs.validation_dir, inputs.weights_file, inputs.embeddings_dir)
            if p is not None]


def _run_confined(argv: list[str], inputs: CheckInputs, *, timeout_s: float,
                  extra_env: dict[str, str] | None = None,
                  before_cleanup: Any = None, also_reach: Sequence[Path] = ()
                  ) -> tuple[dict[str, Any], str]:
    records, log, _ = _finish(_start(argv, inputs, extra_env=extra_env, also_reach=also_reach),
                              timeout_s=timeout_s, before_cleanup=before_cleanup)
    return records, log


@dataclass
class _Confined:
    """A started confined checker: its process and private folder (removed by _finish/_cancel)."""

    proc: subprocess.Popen
    private: Path
    report: Path
    cgroup: Cgroup | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class Stopped:
    """Why a checker ended without writing its report."""

    cause: str
    """``memory`` (its cgroup's limit: the OOM killer ended it), ``time`` (killed at its
    time-out) or ``crash`` (it died or exited another way)."""
    detail: str
    """The limit it met (``6,144 MB``, ``900 s``) or how it ended (``signal SIGSEGV``)."""


def _await_exit(run: _Confined, timeout_s: float) -> tuple[str, Stopped | None]:
    """Wait up to ``timeout_s`` for the checker to exit (killing it then): the tail of its
    output with the most memory it held, and why it left no report (None when it wrote one)."""
    try:
        out, err = run.proc.communicate(timeout=timeout_s)
        log = (out + err)[-4000:]
        timed_out = None
    except subprocess.TimeoutExpired:
        run.proc.kill()
        out, _ = run.proc.communicate()
        log = f"checker timed out after {timeout_s:.0f} s\n{out or ''}"[-4000:]
        timed_out = timeout_s
    return log + _memory_line(run), _why_stopped(run, timed_out=timed_out)


def _why_stopped(run: _Confined, *, timed_out: float | None) -> Stopped | None:
    """Why ``run`` (exited) left no report; None when it wrote one."""
    import signal

    if run.report.is_file():
        return None
    if run.cgroup is not None and run.cgroup.read_events().oom_kills:
        return Stopped("memory", f"{run.memory_mb:,} MB")
    if timed_out is not None:
        return Stopped("time", f"{timed_out:.0f} s")
    code = run.proc.returncode
    if code is not None and code < 0:
        try:
            return Stopped("crash", f"signal {signal.Signals(-code).name}")
        except ValueError:
            return Stopped("crash", f"signal {-code}")
    return Stopped("crash", f"exit status {code}")


def _memory_line(run: _Confined) -> str:
    """For grader.log: the most memory the checker held, of its cgroup's limit."""
    peak = run.cgroup.peak_memory_bytes() if run.cgroup is not None else None
    if peak is None:
        return ""
    return f"\nchecker memory: at most {peak / 2**20:,.0f} MB of the {run.memory_mb:,} MB allowed\n"


def _checker_cgroup(limits: Limits) -> Cgroup | None:
    """A fresh cgroup for one checker: the notebook's memory and task limits (the models it
    loads came out of a kernel that had no more). Keras allocates every layer a model's
    config.json declares before it reads a weight, so a 1.6 kB crafted ``.keras`` file took
    3.6 GB and 11 s to refuse; under the cap the OOM killer ends this checker, never another
    process on the machine. None where no cgroup can be made: then the kernel's sandbox is
    refused too, unless the course allows grading without it."""
    import uuid

    from autograder.grading.sandbox import create_cgroup

    try:
        return create_cgroup(f"check-{uuid.uuid4().hex[:12]}", memory_mb=limits.memory_mb,
                             max_processes=limits.max_processes)
    except SandboxUnavailable:
        return None


def _start(argv: list[str], inputs: CheckInputs, *, extra_env: dict[str, str] | None = None,
           also_reach: Sequence[Path] = (), pass_fds: tuple[int, ...] = (), niceness: int = 0,
           limits: Limits | None = None) -> _Confined:
    private = Path(tempfile.mkdtemp(prefix="course-check-"))
    cgroup: Cgroup | None = None
    try:
        report = private / "report.json"
        scratch = private / "tmp"  # everything the checker writes, but its report
        scratch.mkdir(mode=0o700)
        inputs = replace(inputs, report_file=report)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "KERAS_HOME": str(scratch / "keras"),
            "MPLCONFIGDIR": str(scratch / "mpl"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            **inputs.to_env(),
            **(extra_env or {}),
        }
        if os.geteuid() == 0:
            from autograder.course.permissions import ensure_grader_group

            os.chown(private, NOBODY_UID, NOBODY_UID)
            os.chown(scratch, NOBODY_UID, NOBODY_UID)
            # Its own network and mount namespaces: no network, and a size-capped tmpfs that
            # vanishes with it; then nobody, plus the one group that may read the hidden
            # split, keys and facts.
            # A checkout that nobody cannot traverse is made reachable there too (reach.py).
            group = ensure_grader_group()
            reachable = reach.reach_script([*reach.kit_paths(), *_input_paths(inputs),
                                            *also_reach], gids=[group])
            script = (reachable + " && " if reachable else "") + _WITH_TMPFS.format(uid=NOBODY_UID)
            argv = ["unshare", "--net", "--mount", "--propagation", "private", "--",
                    "/bin/sh", "-c", script, "sh", f"{CHECK_TMP_MB}m", str(scratch),
                    # --pdeathsig: a grader killed with -9 takes its checker with it
                    "setpriv", "--pdeathsig", "SIGKILL", f"--reuid={NOBODY_UID}",
                    f"--regid={NOBODY_UID}",
                    f"--groups={group}", "--inh-caps=-all", *argv]
            if limits is not None:
                cgroup = _checker_cgroup(limits)
                if cgroup is not None:
                    argv = [*cgroup.join_prefix(), *argv]
        proc = subprocess.Popen(argv, env=env, cwd=scratch, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                pass_fds=pass_fds, start_new_session=bool(niceness))
        if niceness:  # before it can start a second thread (Popen returns after its exec)
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, niceness)
            except ProcessLookupError:  # it died at once: finish() reads why from its log
                pass
            _set_group_niceness(proc.pid, niceness)
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        shutil.rmtree(private, ignore_errors=True)
        raise
    return _Confined(proc=proc, private=private, report=report, cgroup=cgroup,
                     memory_mb=limits.memory_mb if limits is not None else None)


def _finish(run: _Confined, *, timeout_s: float, before_cleanup: Any = None
            ) -> tuple[dict[str, Any], str, Stopped | None]:
    try:
        log, stopped = _await_exit(run, timeout_s)
        if stopped is not None:
            log += f"\nchecker ended without a report: {stopped.cause} ({stopped.detail})"
        records = json.loads(run.report.read_text()) if run.report.is_file() else {}
        if before_cleanup is not None:
            before_cleanup(run.private)
        return records, log, stopped
    finally:
        _cancel(run)


def _cancel(run: _Confined) -> None:
    if run.proc.returncode is None:  # still waiting (or running): not needed any more
        run.proc.kill()
        run.proc.communicate()
    if run.cgroup is not None:
        run.cgroup.remove()
    shutil.rmtree(run.private, ignore_errors=True)
