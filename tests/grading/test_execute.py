"""Stage 1 and 2 against the zoo: does each hostile or broken notebook get the status,
the limit and the message a student would expect, and does the grader stay in charge?"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pytest
import zoo

from autograder.errors import SandboxUnavailable, SubmissionError
from autograder.facts import CELL_ERROR, CELL_KILLED, CELL_NOT_RUN, CELL_OK, CELL_TIMEOUT
from autograder.grading import messages, sandbox, stage
from autograder.grading.sandbox_users import find_sandbox_user
from autograder.grading.submission import Submission

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.kernel, pytest.mark.sandbox]


class RssSampler:
    """This process's resident memory, sampled every 10 ms while the block runs.

    (``ru_maxrss`` is the peak over the whole pytest process's life, so growth during one
    test can read as zero after an earlier test peaked higher.)"""

    def __enter__(self) -> "RssSampler":
        self.baseline = self.peak = _rss_kb()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_kb())
            self.samples += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.baseline) / 1024


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def statuses(result) -> list[str]:
    return [c.status for c in result.cells]


def test_plain_notebook_runs_and_exports(run_zoo):
    """Does a plain notebook run every cell and export its answers with where they were set?"""
    result = run_zoo(zoo.HELLO)
    assert statuses(result) == [CELL_OK, CELL_OK]
    assert result.kernel_status == "finished"
    assert result.sandboxed
    assert result.answers == {"conv1_params": 416, "conv2_params": 4128}
    assert result.defined_in == {"conv1_params": 1, "conv2_params": 2}
    assert [c.index for c in result.cells] == [1, 2]  # the markdown cell keeps its place


def test_error_is_recorded_and_grading_goes_on(run_zoo):
    """Is an exception recorded as name + message, with the next cell still run?"""
    result = run_zoo(zoo.ERROR_THEN_OK)
    assert statuses(result) == [CELL_OK, CELL_ERROR, CELL_OK]
    assert result.cells[1].message == "ValueError: wrong shape"
    assert "/work" not in result.cells[1].message
    assert result.answers == {"conv1_params": 416, "conv2_params": 4128}


def test_infinite_loop_times_out_and_next_cell_runs(run_zoo):
    """Does the cell timeout interrupt an infinite loop and keep grading the next cell?"""
    result = run_zoo(zoo.INFINITE_LOOP)
    assert statuses(result) == [CELL_OK, CELL_TIMEOUT, CELL_OK]
    loop = result.cells[1]
    assert loop.limit == "cell_timeout_s"
    assert loop.message == messages.CELL_TIMEOUT.format(limit_s=3)
    assert 3 <= loop.runtime_s < 3 + 8
    assert result.answers == {"conv1_params": 416, "conv2_params": 4128}


def test_loop_ignoring_sigint_is_killed_and_earlier_cells_are_replayed(run_zoo):
    """Is a loop that ignores SIGINT killed after the grace period, later cells not run,
    and are the answers of the cells before it recovered by a replay in a fresh kernel (the
    export needs a live kernel), flagged on the result and said in the notes?"""
    result = run_zoo(zoo.IGNORES_SIGINT)
    assert statuses(result) == [CELL_OK, CELL_KILLED, CELL_NOT_RUN]
    assert result.cells[1].limit == "cell_timeout_s"
    assert "did not stop when interrupted" in result.cells[1].message
    killed_at = result.cells[1].index + 1  # cells are numbered from 1 for students
    assert result.cells[2].message == messages.CELL_NOT_RUN_AFTER.format(cell=killed_at)
    assert result.kernel_status == "killed"
    assert result.replayed_before == result.cells[1].index
    assert result.answers == {"conv1_params": 416}  # cell 1 again; cell 3 never ran
    assert result.defined_in == {"conv1_params": result.cells[0].index}
    assert messages.REPLAYED.format(cell=killed_at, last=killed_at - 1) in result.notes
    assert messages.EXPORT_LOST.format(cell=killed_at) not in result.notes


def test_a_kernel_lost_in_its_first_cell_loses_the_answers_and_says_so(run_zoo):
    """With nothing before the lost cell to replay, is it said clearly that the answers were
    lost, and is the facts folder still there, with every name missing?"""
    result = run_zoo(zoo.IGNORES_SIGINT[1:])
    assert statuses(result) == [CELL_KILLED, CELL_NOT_RUN]
    assert result.kernel_status == "killed" and result.replayed_before is None
    assert result.answers == {}
    assert messages.EXPORT_LOST.format(cell=result.cells[0].index + 1) in result.notes
    assert json.loads((result.facts_dir / "answers.json").read_text()) == \
        {"answers": {}, "errors": {}, "steps_per_epoch": {}}


def test_memory_bomb_is_stopped_as_oom(run_zoo):
    """Does a memory bomb end as "oom" at its own cell, naming the memory limit?"""
    result = run_zoo(zoo.MEMORY_BOMB)
    assert statuses(result) == [CELL_OK, CELL_KILLED, CELL_NOT_RUN]
    assert result.cells[1].limit == "memory_mb"
    assert result.cells[1].message == messages.CELL_OOM.format(limit_mb=400)
    assert result.kernel_status == "oom"


def test_fork_bomb_hits_the_process_limit_and_kernel_survives(run_zoo):
    """Does a fork bomb run into pids.max (the cell errors, naming the limit) while the
    kernel lives on, and are the children gone after grading?"""
    result = run_zoo(zoo.FORK_BOMB)
    assert statuses(result)[:2] == [CELL_OK, CELL_ERROR]
    assert result.cells[1].limit == "max_processes"
    assert result.cells[1].message.startswith("BlockingIOError")
    assert messages.CELL_PIDS.format(limit=64) in result.cells[1].message
    # While the children live, IPython itself may not get a thread for the next cell:
    # that cell runs and is recorded either way, and the kernel survives to export.
    assert result.cells[2].status in (CELL_OK, CELL_ERROR)
    assert result.kernel_status == "finished"
    assert result.answers["conv1_params"] == 416
    assert _processes_of_slot_user() == []


def test_os_exit_is_a_kernel_death_at_that_cell(run_zoo):
    """Is os._exit reported as the kernel dying at that cell, with the exit code?"""
    result = run_zoo(zoo.OS_EXIT)
    assert statuses(result) == [CELL_OK, CELL_KILLED, CELL_NOT_RUN]
    assert result.cells[1].limit == "kernel_died"
    assert "exited with code 3" in result.cells[1].message
    assert result.kernel_status == "died"
    assert result.answers == {"conv1_params": 416}  # replayed; what came after is lost
    assert not any("was dropped" in note for note in result.notes)  # its sockets closing is not output


def test_segfault_is_a_kernel_death_at_that_cell(run_zoo):
    """Is a segmentation fault reported as the kernel dying at that cell?"""
    result = run_zoo(zoo.SEGFAULT)
    assert statuses(result) == [CELL_OK, CELL_KILLED, CELL_NOT_RUN]
    assert result.cells[1].limit == "kernel_died"
    assert result.cells[1].message.startswith("The Python kernel died")
    assert result.kernel_status == "died"
    assert not any("was dropped" in note for note in result.notes)


def test_hundred_megabyte_line_is_cut_without_growing_the_grader(run_zoo):
    """Is a 100 MB single line cut at the byte limit, and does the grader's memory stay flat?"""
    with RssSampler() as rss:
        result = run_zoo(zoo.HUGE_LINE, memory_mb=800)
    assert rss.samples > 10  # it really watched the run
    assert rss.grown_mb < 50
    assert result.cells[0].limit == "output_bytes"
    assert result.cells[0].status == CELL_OK
    assert result.cells[1].status == CELL_OK
    # libzmq dropped the one oversized message before Python saw it.
    assert messages.OUTPUT_DROPPED.format(cell=1, limit=20_000 + 2**20) in result.notes
    assert result.answers == {"conv1_params": 416}


def test_many_lines_are_cut_at_the_byte_limit(run_zoo, tmp_path):
    """Are many small lines cut at limits.output_bytes (bytes, not lines), with a note?"""
    # A generous timeout, so that the cut, not the clock, is what this test sees.
    result = run_zoo(zoo.MANY_LINES, cell_timeout_s=60)
    assert result.cells[0].limit == "output_bytes"
    assert result.cells[0].message == messages.OUTPUT_CUT.format(cell=1, limit=20_000)
    assert result.answers == {"conv1_params": 416}


def test_network_is_unreachable(run_zoo):
    """Do connections to loopback and to public addresses all fail?"""
    result = run_zoo(zoo.NETWORK)
    assert result.cells[0].status == CELL_OK
    assert "connected" not in result.answers["backbone_layers"]
    assert len(result.answers["backbone_layers"]) == 4


def test_files_outside_scratch_are_out_of_reach(run_zoo):
    """Are /root, the course files, the gradebook, other jobs and the venv unreadable or
    unwritable, while the scratch folder works?"""
    for rel in zoo.COURSE_FILES.values():
        assert (REPO / rel).exists(), rel  # the probe must aim at files that are there
    result = run_zoo(zoo.filesystem(REPO))
    seen = dict(result.answers["chosen_model"])
    assert seen.pop("write scratch") == "allowed"
    for label in zoo.COURSE_FILES:  # not merely unreadable: not there at all in the sandbox
        assert seen[label] == "FileNotFoundError", (label, seen[label])
    assert all(outcome != "allowed" for outcome in seen.values()), seen


def test_disk_filler_hits_the_disk_limit(run_zoo):
    """Does writing past the job's tmpfs size fail in that cell, naming the disk limit?"""
    result = run_zoo(zoo.DISK_FILLER)
    assert statuses(result) == [CELL_OK, CELL_ERROR, CELL_OK]
    assert result.cells[1].limit == "disk_mb"
    assert "disk space" in result.cells[1].message


def test_many_small_files_hit_the_tmpfs_cap(run_zoo):
    """Is the job's disk cap enforced by the tmpfs itself (40 files of 4 MiB, each far under
    the file-size limit, against 64 MiB), in that cell, naming the disk limit?"""
    result = run_zoo(zoo.MANY_SMALL_FILES)
    assert statuses(result) == [CELL_OK, CELL_ERROR, CELL_OK]
    assert result.cells[1].limit == "disk_mb"
    assert "No space left on device" in result.cells[1].message
    assert result.answers == {"conv1_params": 416, "conv2_params": 4128}


def test_setsid_daemon_does_not_outlive_grading(run_zoo):
    """Is a double-forked setsid daemon gone after grading, before it could write?"""
    result = run_zoo(zoo.SETSID_DAEMON)
    assert result.answers["chosen_model"] == "up"  # it was running during the cell
    assert _processes_of_slot_user() == []
    time.sleep(5)  # longer than the daemon's sleep
    assert _processes_of_slot_user() == []
    assert not list(Path(stage.STAGE_ROOT).glob("*/scratch/export/daemon-was-here"))


def test_monkeypatching_does_not_change_exported_values(run_zoo):
    """Do patched numpy.testing / builtins leave the export working with the real values?"""
    result = run_zoo(zoo.MONKEYPATCH)
    assert statuses(result) == [CELL_OK, CELL_OK, CELL_OK]
    assert result.answers == {"conv1_params": 999, "conv2_params": 7}


def test_input_transformer_only_affects_student_cells(run_zoo):
    """Does a transformer that blanks every later cell leave the grader's export intact?"""
    result = run_zoo(zoo.INPUT_TRANSFORMER)
    assert result.answers == {"conv1_params": 416}  # conv2_params's cell became `pass`
    assert not any("could not collect" in note for note in result.notes)


def test_kernel_is_seeded_and_has_course_environment(run_zoo):
    """Is Python's random seeded (same value twice), the COURSE_* variables set, the
    release helpers and data visible, and stderr output free of cost?"""
    first, second = run_zoo(zoo.SEEDED), run_zoo(zoo.SEEDED)
    assert first.answers["conv1_params"] == second.answers["conv1_params"]
    assert first.answers["chosen_model"] == ["reduced", "stand-in", "/sandbox/work/data"]
    assert first.answers["backbone_layers"] == ["test", "train", "validation"]
    assert statuses(first) == [CELL_OK, CELL_OK]


def test_budget_stops_the_notebook_but_keeps_earlier_answers(run_zoo):
    """When the notebook budget runs out, is that cell marked, the rest not run, and what
    was defined before still exported?"""
    result = run_zoo(zoo.BUDGET, notebook_budget_s=6, cell_timeout_s=5)
    assert statuses(result) == [CELL_OK, CELL_OK, CELL_KILLED, CELL_NOT_RUN]
    assert result.cells[2].limit == "notebook_budget_s"
    assert result.kernel_status == "budget"
    assert result.answers == {"conv1_params": 1}


def test_edited_metadata_is_matched_only_to_known_unique_ids(run_zoo):
    """Are grade_ids taken from metadata only when the release knows them and they are
    unique, and does a skip-execution tag not stop a cell from running?"""
    nb = zoo.build(["conv1_params = 1", "conv2_params = 2", "a = 1", "b = 2", "c = 3"])
    nb.cells[1].metadata["nbgrader"] = {"grade_id": "q2_cnn_architecture"}
    nb.cells[2].metadata["nbgrader"] = {"grade_id": "made_up_by_student"}
    nb.cells[3].metadata["nbgrader"] = {"grade_id": "q1_output_shapes"}
    nb.cells[4].metadata["nbgrader"] = {"grade_id": "q1_output_shapes"}
    nb.cells[5].metadata["tags"] = ["skip-execution", "raises-exception"]
    result = run_zoo(nb)
    assert [c.grade_id for c in result.cells] == ["q2_cnn_architecture", None, None, None, None]
    assert statuses(result) == [CELL_OK] * 5
    assert result.answers == {"conv1_params": 1, "conv2_params": 2}


def test_deleted_cells_just_leave_names_undefined(run_zoo):
    """Does a submission without the cell that defines a name just lack that answer?"""
    result = run_zoo(zoo.HELLO[:1])
    assert result.answers == {"conv1_params": 416}
    assert "conv2_params" not in result.answer_errors


def test_keras_model_is_exported_into_the_grader_folder(run_zoo, tmp_path):
    """Is a Keras model saved as .keras and copied into the grader's own folder, with its
    history, while a non-model under a model name is reported?"""
    result = run_zoo(zoo.KERAS_MODEL, cell_timeout_s=120, memory_mb=2048, max_processes=512)
    assert result.cells[0].status == CELL_OK, result.cells[0].message
    path = result.models["cnn_model"]
    assert path.is_file() and path.read_bytes()[:4] == b"PK\x03\x04"
    assert path.is_relative_to(tmp_path)
    assert set(result.histories["cnn_history"]) == {"loss"}
    assert len(result.histories["cnn_history"]["loss"]) == 2
    assert result.answer_errors["tl_model"] == messages.MODEL_NOT_KERAS.format(type_name="str")


def test_each_model_is_handed_on_as_soon_as_the_export_finished_it(run_zoo):
    """While the export still runs, is each model file it finished taken into the grader's folder
    and handed on (the checker loads it meanwhile, issue 12), as the very file the facts hold?"""
    offered: dict[str, Path] = {}
    result = run_zoo(zoo.SLOW_SECOND_SAVE, cell_timeout_s=120, memory_mb=2048, max_processes=512,
                     on_model=lambda name, path: offered.setdefault(name, path))
    assert result.cells[0].status == CELL_OK, result.cells[0].message
    # ft_model is handed on only by the taker, while the export runs: here during cnn_model's
    # 1.5 s save. cnn_model may be taken in the export's last moments too (a slow machine
    # finishes the export more than one poll after that save) or once the kernel died.
    assert "ft_model" in offered
    assert offered == {name: result.models[name] for name in offered}  # the very files judged
    assert offered["ft_model"].read_bytes()[:4] == b"PK\x03\x04"
    assert set(result.models) == {"ft_model", "cnn_model"}


def test_a_kernel_lost_in_the_export_leaves_no_model_even_one_already_handed_on(run_zoo):
    """A kernel that dies in the export loses its answers (the export needs a live kernel): is a
    model file taken before it died deleted too, so nothing of that export is judged?"""
    offered: dict[str, Path] = {}
    result = run_zoo(zoo.DIES_IN_THE_EXPORT, cell_timeout_s=120, memory_mb=2048,
                     max_processes=512, on_model=lambda name, path: offered.setdefault(name, path))
    assert result.cells[0].status == CELL_OK, result.cells[0].message
    assert list(offered) == ["ft_model"]  # taken while cnn_model's save was still running
    assert result.models == {} and result.answers == {}
    assert not offered["ft_model"].exists()
    assert any("export" in note for note in result.notes), result.notes


def test_missing_sandbox_is_refused_unless_waived(run_zoo, monkeypatch, base_course, tmp_path):
    """Is a machine without the sandbox refused with the missing part named, and does the
    explicit waiver run unsandboxed and say so?"""
    import dataclasses

    from e2e_support import course_with

    from autograder.grading import execute

    monkeypatch.setattr(sandbox, "probe_sandbox", lambda **_: ["bwrap: install bubblewrap"])
    with pytest.raises(SandboxUnavailable, match="bwrap: install bubblewrap"):
        run_zoo(zoo.HELLO)
    course = course_with(base_course)
    waived = dataclasses.replace(course.config, grading=dataclasses.replace(
        course.config.grading, allow_unsandboxed=True))
    hello = tmp_path / "hello.ipynb"
    nbformat.write(zoo.build(zoo.HELLO), hello)
    spec = execute.ExecutionSpec.from_course(
        type(course)(root=course.root, config=waived), waived.assignments[0],
        profile="reduced", weights_mode="stand-in")
    result = execute.execute_submission(Submission.read(hello), spec, student="open", slot=0,
                                        job_dir=tmp_path / "unsandboxed-job")
    assert not result.sandboxed
    assert result.notes[0] == messages.UNSANDBOXED
    assert result.answers == {"conv1_params": 416, "conv2_params": 4128}


def test_a_sandbox_a_killed_grader_left_running_is_gone_before_the_slots_next_job(run_zoo):
    """A grader killed with -9 while its kernel was starting once left that sandbox running as
    the slot's uid (bwrap had not yet set up --die-with-parent), beside the next student's
    kernel under the same uid. Is a process of a job cgroup running as the slot's uid killed
    before the slot's next job starts its kernel, while one outside the job cgroups (a sandbox
    probe, which graders run as slot 0's uid without holding the slot) is left alone, and does
    the job run as usual?"""
    import signal

    user = find_sandbox_user("course-sbx", 0)
    as_slot_user = ["setpriv", "--reuid", str(user.uid), "--regid", str(user.gid),
                    "--clear-groups", "sleep", "300"]
    group = sandbox.create_cgroup(f"leftover-{os.getpid()}", memory_mb=64, max_processes=8)
    leftover = subprocess.Popen([*group.join_prefix(), *as_slot_user], start_new_session=True)
    probe_like = subprocess.Popen(as_slot_user, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(_processes_of_slot_user()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_processes_of_slot_user()) == 2
        result = run_zoo(zoo.HELLO)
        assert result.answers == {"conv1_params": 416, "conv2_params": 4128}
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        assert probe_like.poll() is None
    finally:
        for proc in (leftover, probe_like):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        group.remove()


def _processes_of_slot_user() -> list[str]:
    """Live processes of slot 0's uid (zombies are dead: they wait for PID 1 to reap them)."""
    user = find_sandbox_user("course-sbx", 0)
    ps = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-u", str(user.uid)],
                        capture_output=True, text=True)
    return [line for line in ps.stdout.splitlines()
            if line.strip() and not line.split()[1].startswith("Z")]


# ---------------------------------------------------------------------------------------
# Files that are not notebooks: no kernel needed


@pytest.mark.parametrize(("content", "expected"), [
    ('{"cells": [', "is not valid JSON"),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "cells": [], "metadata": {}}),
     "has nbformat 3"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": {}}),
     "has no code cells"),
    ("[1, 2]", "is JSON but not a notebook"),
])
def test_unreadable_submission_is_a_submission_error(tmp_path, content, expected):
    """Does malformed JSON, a wrong nbformat or an empty notebook raise a SubmissionError
    naming the file and saying what to do?"""
    path = tmp_path / "homework.ipynb"
    path.write_text(content)
    with pytest.raises(SubmissionError) as info:
        Submission.read(path)
    assert info.value.message.startswith("homework.ipynb ")
    assert expected in info.value.message
    assert info.value.hint


def test_notebook_with_only_markdown_is_empty(tmp_path):
    """Is a notebook whose cells are all markdown refused as having no code?"""
    path = tmp_path / "empty.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("hi")])
    nbformat.write(nb, path)
    with pytest.raises(SubmissionError, match="has no code cells"):
        Submission.read(path)


def test_a_probe_that_fails_once_never_runs_the_kernel_unsandboxed(run_zoo, monkeypatch):
    """If the sandbox probe fails (say, under load) and a second probe would pass, is the job
    still refused rather than run without the sandbox? (The hostile zoo once wrote course files
    as root this way.)"""
    calls = []
    real = sandbox.probe_sandbox

    def flaky(**kwargs):
        calls.append(kwargs)
        return ["bubblewrap as course-sbx0: timed out"] if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(sandbox, "probe_sandbox", flaky)
    with pytest.raises(SandboxUnavailable, match="timed out"):
        run_zoo(zoo.HELLO)
    assert len(calls) == 1


GPU_PROBE = [
    "import os\nconv1_params = sorted(n for n in os.listdir('/dev') if n.startswith('nvidia'))\n"
    "conv1_params += [f'{k}={os.environ[k]}' for k in ('LD_LIBRARY_PATH', 'CUDA_VISIBLE_DEVICES')"
    " if k in os.environ]",
    "conv2_params = sorted(os.listdir('/dev/nvidia-caps'))\n"
    "with open('/dev/nvidia0', 'w') as f:\n    f.write('x')",
]


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu-assignment", "gpu-assignment"])
def test_the_gpu_device_nodes_reach_the_sandbox_only_for_a_gpu_assignment(
        tmp_path, base_course, release_dir, sandbox_ready, monkeypatch, gpu):
    """A course that grades on a GPU (issue 12) needs the driver's device nodes in the sandbox,
    and any other course none of them: does a GPU assignment's kernel see and open exactly the
    host's NVIDIA nodes (character devices made here with mknod, as the driver's are, on a
    machine without a GPU), and a CPU assignment's kernel none, on the same host?"""
    import dataclasses
    import stat as stat_module

    from e2e_support import course_with, open_dir

    from autograder.grading.execute import ExecutionSpec, execute_submission

    dev = open_dir("course-test-dev-")
    (dev / "nvidia-caps").mkdir(mode=0o755)
    for name in ("nvidia0", "nvidiactl", "nvidia-caps/nvidia-cap1"):
        os.mknod(dev / name, 0o666 | stat_module.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
        os.chmod(dev / name, 0o666)
    (dev / "nvidia-not-a-device").write_text("a plain file is never passed through")
    monkeypatch.setattr(sandbox, "GPU_DEVICE_DIR", dev)
    # GKE-style hosts find libcuda.so.1 only through LD_LIBRARY_PATH; a folder the sandbox does
    # not show (outside /usr) or that does not exist is not passed on.
    monkeypatch.setenv("LD_LIBRARY_PATH", f"/usr/lib:{dev}:/usr/no-such-driver-folder:relative")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    course = course_with(base_course)
    assignment = dataclasses.replace(course.config.assignments[0], gpu=gpu)
    spec = ExecutionSpec.from_course(course, assignment, profile="reduced",
                                     weights_mode="stand-in", release_dir=release_dir)
    nb = zoo.build(GPU_PROBE)
    path = tmp_path / "gpu.ipynb"
    nbformat.write(nb, path)
    try:
        result = execute_submission(Submission.of(path, nb), spec, student="gpu", slot=0,
                                    job_dir=tmp_path / "job")
    finally:
        import shutil
        shutil.rmtree(dev, ignore_errors=True)
    if gpu:
        assert statuses(result) == [CELL_OK, CELL_OK], result.cells
        assert result.answers == {"conv1_params": ["nvidia-caps", "nvidia0", "nvidiactl",
                                                   "LD_LIBRARY_PATH=/usr/lib",
                                                   "CUDA_VISIBLE_DEVICES=0"],
                                  "conv2_params": ["nvidia-cap1"]}
    else:
        assert statuses(result) == [CELL_OK, CELL_ERROR], result.cells
        assert result.answers == {"conv1_params": []}


def test_a_gpu_assignment_on_a_machine_without_a_gpu_is_refused_by_name(tmp_path):
    """Grading on a GPU where the host has no NVIDIA nodes must stop with a reason that says
    where to switch it off, not quietly train on the CPU under limits set for a GPU."""
    with pytest.raises(SandboxUnavailable) as info:
        sandbox.gpu_devices(tmp_path)
    assert info.value.message == (f"grading on a GPU was asked for, but {tmp_path} has no "
                                  f"NVIDIA device nodes")
    assert "assignments[...].gpu" in info.value.hint and "grading.gpu" in info.value.hint
