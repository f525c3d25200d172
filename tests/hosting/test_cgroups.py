"""Do the per-user groups the local hub puts servers in actually stop a memory hog and a thread bomb?
And does the one cgroup module (:mod:`autograder.cgroups`) tell v1 from v2 as documented?"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from autograder import cgroups as shared
from autograder.hosting import cgroups

needs_cgroups = pytest.mark.skipif(os.geteuid() != 0 or cgroups.detect_version() == 0,
                                   reason="needs root and a writable cgroup hierarchy")
PARENT = "course-hub-test"
NOBODY = 65534


@pytest.fixture
def group() -> Iterator[cgroups.UserGroup]:
    made = cgroups.prepare_group(f"t{os.getpid()}", mem_limit_bytes=150 * 1024**2, pids_max=24, cpu_limit=0.5,
                                 parent=PARENT)
    yield made
    cgroups.remove_group(made)
    for folder in {d.parent for d in made.dirs}:
        folder.rmdir()


def _run(group: cgroups.UserGroup, code: str, **kwargs) -> subprocess.CompletedProcess:
    def preexec() -> None:  # what the spawner does: join, then drop to the user
        cgroups.join_group(group)
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    # The system interpreter (stdlib only): the venv may sit where nobody cannot traverse.
    python = os.path.realpath(sys.executable)
    return subprocess.run([python, "-c", code], preexec_fn=preexec, capture_output=True, text=True,
                          timeout=60, **kwargs)


@needs_cgroups
def test_a_memory_hog_is_killed(group):
    """Is a server process that goes past the memory limit killed (OOM), not the machine?"""
    done = _run(group, "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('survived')")
    assert done.returncode == -signal.SIGKILL and "survived" not in done.stdout


@needs_cgroups
def test_a_thread_bomb_hits_the_process_limit(group):
    code = (
        "import threading, time\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start(); n += 1\n"
        "except RuntimeError:\n"
        "    print('limited at', n)\n"
    )
    done = _run(group, code)
    assert "limited at" in done.stdout, done.stdout + done.stderr
    assert int(done.stdout.split()[-1]) < 24


@needs_cgroups
def test_the_cpu_quota_is_set(group):
    if group.version == 1:
        quota = (shared.CGROUP_ROOT / "cpu" / PARENT / group.user / "cpu.cfs_quota_us").read_text()
        assert int(quota) == 50_000
    else:
        assert (group.dirs[0] / "cpu.max").read_text().split()[0] == "50000"


@needs_cgroups
def test_kill_group_reaches_a_daemon_that_left_the_session(group):
    """Does `course hub down` reach a process that double-forked into its own session?"""
    _run(group, "import os, subprocess; subprocess.Popen(['sleep', '300'], start_new_session=True, "
         "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")
    time.sleep(0.3)
    assert cgroups.group_pids(group), "the daemon should still be in the group"
    assert cgroups.kill_group(group) >= 1
    time.sleep(0.3)
    assert cgroups.group_pids(group) == set()


def _fake_root(tmp_path, *files: str):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("memory pids cpu\n" if name == "cgroup.controllers" else "")
    return tmp_path


@pytest.mark.parametrize("files, version", [
    (["cgroup.controllers"], 2),  # /sys/fs/cgroup is a cgroup2 mount
    (["memory/memory.limit_in_bytes", "memory/cgroup.procs", "pids/cgroup.procs",
      "unified/cgroup.controllers"], 1),  # hybrid: v1 controllers, an empty cgroup2 aside
    (["cgroup.controllers", "memory/cgroup.procs"], 2),  # a v2 child group named memory
    (["memory/cgroup.procs"], 0),  # a folder, no v1 memory controller
    ([], 0),
])
def test_one_detection_order_for_grader_and_hub(tmp_path, files, version):
    """Is v2 recognised by its top-level cgroup.controllers first, v1 by its memory controller?"""
    root = _fake_root(tmp_path, *files)
    assert shared.detect_version(root) == version
    if version == 1:
        assert shared.controllers(root) == {"memory", "pids"}
    if version == 2:
        assert shared.controllers(root) == {"memory", "pids", "cpu"}


def test_no_hierarchy_gives_the_hub_an_empty_group_and_rlimits(tmp_path):
    """Without a hierarchy, is the user's group empty (the spawner then sets RLIMITs)?"""
    group = cgroups.prepare_group("u", mem_limit_bytes=1 << 30, pids_max=8, cpu_limit=1.0, root=tmp_path)
    assert (group.version, group.dirs, group.enforced) == (0, (), ())
    assert shared.create("u", shared.Limits(memory_bytes=1, pids_max=1), parent="p", root=tmp_path) is None
