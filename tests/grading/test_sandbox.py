"""The sandbox's parts without a Jupyter kernel: is the argv what we think, do the
cgroups kill what they hold, and does the probe name what is missing?"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import cgroups
from autograder.errors import SandboxUnavailable
from autograder.grading import sandbox, slots
from autograder.grading.sandbox_users import SandboxUser, find_sandbox_user
from autograder.grading.stage import STAGE_ROOT, JobLayout
from autograder.paths import venv_dir

USER = SandboxUser(name="course-sbx0", uid=12345, gid=12346)


def _argv(tmp_path: Path, **kw) -> list[str]:
    layout = JobLayout(job_dir=tmp_path / "job", stage=tmp_path / "stage")
    return sandbox.build_sandbox_argv(
        [sys.executable, "-m", "ipykernel_launcher"], user=USER, layout=layout,
        ro_binds=[(tmp_path / "helpers.py", "/sandbox/work/course_helpers.py")],
        env={"COURSE_PROFILE": "reduced"}, cgroup=None, file_size_mb=10, **kw)


def test_argv_drops_root_before_bubblewrap(tmp_path):
    """Does the command switch to the slot uid and drop capabilities before bwrap runs?"""
    argv = _argv(tmp_path)
    setpriv, bwrap = argv.index("setpriv"), argv.index(sandbox.BWRAP)
    assert setpriv < bwrap
    assert argv[setpriv:bwrap] == ["setpriv", "--reuid", "12345", "--regid", "12346",
                                   "--clear-groups", "--inh-caps=-all", "--no-new-privs"]
    assert ["--fsize=10485760", "--core=0"] == argv[1:3]
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"


def test_argv_shows_no_course_files(tmp_path):
    """Are /root, the course repository and the gradebook absent from every bind?"""
    argv = _argv(tmp_path)
    sources = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    venv = str(venv_dir() or "/nonexistent")
    for source in sources:
        assert not source.startswith("/root")
        assert source.startswith(("/usr", "/etc/", venv, str(tmp_path))), source
    assert "/work/main" not in [s for s in sources if not s.startswith(venv)]
    writable = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert all(w.startswith(str(tmp_path / "stage")) for w in writable)
    assert argv[argv.index("--remount-ro") + 1] in ("/", "/dev")


def test_argv_passes_device_nodes_through_only_when_given(tmp_path):
    """Are the GPU's nodes bound as devices (``--dev-bind``, openable), each at its /dev path,
    before /dev is made read-only, and is there no device bind at all by default?"""
    assert "--dev-bind" not in _argv(tmp_path)
    nodes = [(Path("/dev/nvidia0"), "/dev/nvidia0"),
             (Path("/dev/nvidia-caps/nvidia-cap1"), "/dev/nvidia-caps/nvidia-cap1")]
    argv = _argv(tmp_path, devices=nodes)
    binds = [argv[i:i + 3] for i, a in enumerate(argv) if a == "--dev-bind"]
    assert binds == [["--dev-bind", "/dev/nvidia0", "/dev/nvidia0"],
                     ["--dev-bind", "/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-caps/nvidia-cap1"]]
    assert argv.index("--dev-bind") < argv.index("/dev", argv.index("--remount-ro"))


def test_a_gpu_kernel_keeps_only_the_gpu_settings_it_can_use(tmp_path):
    """A GPU assignment's kernel starts with a cleared environment: does it get back the
    grader's driver library folders (those under /usr, which the sandbox shows, normalised,
    once each) and its card selection, and nothing else of the grader's environment?"""
    environ = {
        "LD_LIBRARY_PATH": f"/usr/lib:/usr/lib/../lib:{tmp_path}:/usr/no-such-folder::relative",
        "CUDA_VISIBLE_DEVICES": "1",
        "COURSE_GRADER_SECRET": "never in a kernel",
        "PATH": "/root/bin",
    }
    assert sandbox.gpu_environment(environ) == {"LD_LIBRARY_PATH": "/usr/lib",
                                                "CUDA_VISIBLE_DEVICES": "1"}
    assert sandbox.gpu_environment({"LD_LIBRARY_PATH": str(tmp_path)}) == {}
    assert sandbox.gpu_environment({}) == {}


def test_argv_joins_the_cgroup_first(tmp_path):
    """Does the process join the job cgroup before prlimit/setpriv/bwrap start?"""

    class FakeGroup(cgroups.Cgroup):
        def procs_files(self):
            return [Path("/sys/fs/cgroup/memory/x/cgroup.procs")]

    layout = JobLayout(job_dir=tmp_path / "job", stage=tmp_path / "stage")
    argv = sandbox.build_sandbox_argv(["python"], user=USER, layout=layout, ro_binds=[],
                                      env={}, cgroup=FakeGroup(), file_size_mb=1)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv.index("/sys/fs/cgroup/memory/x/cgroup.procs") < argv.index("prlimit")


def test_unknown_slot_user_names_the_setup_command():
    """Is a missing slot user a SandboxUnavailable that says to run `course sandbox setup`?"""
    with pytest.raises(SandboxUnavailable) as info:
        find_sandbox_user("no-such-prefix-", 7)
    assert "no-such-prefix-7" in info.value.message
    assert "course sandbox setup" in info.value.hint


def test_probe_names_a_missing_user():
    """Does the probe list a missing uid as a part, with what to do?"""
    missing = sandbox.probe_sandbox(prefix="no-such-prefix-", slots=1)
    assert any(m.startswith("unprivileged uid: sandbox user no-such-prefix-0") for m in missing)


@pytest.mark.sandbox
@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")
def test_probe_is_clean_on_a_prepared_machine(base_course):
    """After `course sandbox setup` (done for the session by tests/conftest.py), does the
    probe find nothing missing? (No skip when it does: that is the failure.)"""
    prefix = base_course.config.grading.sandbox_user_prefix
    assert sandbox.probe_sandbox(prefix=prefix, slots=1) == []


@pytest.mark.sandbox
def test_cgroup_kill_takes_a_detached_setsid_tree(sandbox_ready):
    """Does killing the cgroup end a double-forked setsid daemon that left its parent?"""
    group = sandbox.create_cgroup(f"test-{os.getpid()}", memory_mb=64, max_processes=16)
    try:
        script = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n"
                  "    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\n")
        subprocess.run([*group.join_prefix(), sys.executable, "-c", script], check=True)
        deadline = time.monotonic() + 5
        while not group.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        daemons = group.pids()
        assert len(daemons) == 1
        group.kill_all()
        assert group.pids() == []
        assert _dead(daemons[0])
    finally:
        group.remove()


@pytest.mark.sandbox
def test_cgroup_counts_pids_max_hits(sandbox_ready):
    """Is a fork past pids.max refused and counted as an event?"""
    group = sandbox.create_cgroup(f"pids-{os.getpid()}", memory_mb=256, max_processes=4)
    try:
        script = ("import os, time\nkids = []\ntry:\n    for _ in range(20):\n"
                  "        pid = os.fork()\n        if pid == 0:\n            time.sleep(5)\n"
                  "            os._exit(0)\n        kids.append(pid)\n"
                  "except BlockingIOError:\n    print(len(kids))\n")
        run = subprocess.run([*group.join_prefix(), sys.executable, "-c", script],
                             capture_output=True, text=True, timeout=30)
        assert 0 < int(run.stdout) < 4
        assert group.read_events().pids_max_hits > 0
    finally:
        group.remove()


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for PID 1 to reap it (nothing left that can run)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.sandbox
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_killed_graders_job_folder_is_released_by_the_next_holder_of_its_slot():
    """After a grader is killed -9 mid-job, its tmpfs stays mounted under the stage root; does
    the next job to take that slot unmount and delete it (and leave other slots alone)?"""
    slot = 97  # a slot no real grader uses
    layout = JobLayout(job_dir=Path("/nonexistent"), stage=STAGE_ROOT / f"{slot}-dead")
    other = STAGE_ROOT / f"{slot + 1}-alive"
    STAGE_ROOT.mkdir(mode=0o711, exist_ok=True)
    layout.scratch.mkdir(parents=True)
    other.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(layout.scratch)], check=True)
    try:
        with slots.slot_lock(slot):
            assert not os.path.ismount(layout.scratch)
            assert not layout.stage.exists()
        assert other.is_dir()
    finally:
        if os.path.ismount(layout.scratch):
            subprocess.run(["umount", "--lazy", str(layout.scratch)])
        other.rmdir()
        (STAGE_ROOT / f"slot-{slot}.lock").unlink(missing_ok=True)


def test_a_job_takes_a_free_slot_rather_than_wait_for_a_held_one(tmp_path):
    """With slot 0 held by another grader (another process), does a job that prefers slot 0
    get slot 1 at once, and wait for slot 0 only when both are held?"""
    import fcntl

    STAGE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    base = 90  # slots no real grader uses: 90 and 91
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"h = open({str(STAGE_ROOT / f'slot-{base}.lock')!r}, 'w')\n"
         "fcntl.flock(h, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with slots.free_slot(base, count=base + 2) as got:
            waited = time.monotonic() - started
        assert got != base and waited < 5  # not the 30 s the holder keeps slot 90
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        for n in (base, base + 1):
            (STAGE_ROOT / f"slot-{n}.lock").unlink(missing_ok=True)


def test_outside_a_venv_there_is_no_venv_to_bind_and_the_hub_uses_sys_prefix(tmp_path, monkeypatch):
    """Outside a venv, does the sandbox bind no venv (only /usr) while the hub still finds
    its scripts under sys.prefix (autograder.paths: one answer for both)?"""
    from autograder import paths

    monkeypatch.setattr(sys, "prefix", "/usr")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert paths.venv_dir() is None and paths.env_prefix() == Path("/usr")
    argv = _argv(tmp_path)
    sources = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert all(s.startswith(("/usr", "/etc/", str(tmp_path))) for s in sources), sources
    assert sandbox.kernel_environment(work_dir="w", tmp_dir="t", extra={})["PATH"] == \
        "/usr/local/bin:/usr/bin:/bin"
