"""`course hub up | down | status` on this machine: users, exchange modes, limits, clean shutdown."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hubclient import HubClient

from autograder.hosting import accounts, cgroups, localhub
from autograder.hosting.hubconfig import hub_paths, render_hub_config

pytestmark = pytest.mark.hub
REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) | (path.stat().st_mode & (stat.S_ISGID | stat.S_ISVTX))


def _course_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.prefix + "/bin/course", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "COURSE_ROOT": str(REPO)})


def _live_processes_of(users: set[str], *, grace_s: float = 5.0) -> list[str]:
    """Processes of ``users`` that are not zombies, after a short grace for ones being killed."""
    deadline = time.monotonic() + grace_s
    while True:
        ps = subprocess.run(["ps", "-o", "user=,pid=,stat=,comm=", "-u", ",".join(sorted(users))],
                            capture_output=True, text=True).stdout.splitlines()
        live = [line for line in ps if line.split()[2][0] != "Z"]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.2)


def test_a_second_up_is_harmless(hub):
    """Does `up` on a running hub leave it alone and just report it?"""
    before = localhub.status(hub.course).hub_pid
    done = _course_cli("hub", "up")
    assert done.returncode == 0, done.stderr
    assert "already running" in done.stdout
    assert localhub.status(hub.course).hub_pid == before


def test_up_prints_the_login_and_the_limits_note(hub):
    done = _course_cli("hub", "up")
    out = " ".join(done.stdout.split())
    assert hub.password in out and hub.instructor in out and all(s in out for s in hub.students)
    assert "does not enforce mem_limit/cpu_limit" in out and "Kubernetes" in out


def test_status_says_what_runs(hub):
    st = localhub.status(hub.course)
    assert st.running and st.healthy and st.proxy_pid and st.service_pid
    done = _course_cli("hub", "status")
    assert done.returncode == 0 and "healthy" in done.stdout


def test_users_homes_and_exchange_are_locked_down(hub):
    """Are homes private and the exchange modes the ones that close nbgrader#978/#1202?"""
    h = hub.course.config.hub
    for name in (h.instructor, *h.students):
        home = Path(pwd.getpwnam(name).pw_dir)
        assert _mode(home) == 0o700 and home.stat().st_uid == pwd.getpwnam(name).pw_uid
    layout = accounts.ExchangeLayout(root=Path(h.exchange_dir), course_id=hub.course.config.course_id)
    assert _mode(layout.root) == 0o1777
    assert _mode(layout.inbound) == 0o2733
    assert _mode(layout.feedback) == 0o711
    instructor_uid = pwd.getpwnam(h.instructor).pw_uid
    assert layout.inbound.stat().st_uid == instructor_uid


def test_hub_config_wires_the_pieces(hub):
    text = render_hub_config(hub.course, hub_paths(hub.course))
    assert "c.JupyterHub.authenticator_class = 'shared-password'" in text
    assert "LimitedLocalProcessSpawner" in text and "'/lab'" in text
    assert f"access:services!service={hub.course.config.hub.service_name}" in text
    assert "'name': 'admin', 'services'" in text


def test_a_user_server_runs_inside_its_limits(hub):
    """Is a user's server (and what it starts) in a cgroup with the configured memory/pids caps?"""
    student = hub.students[-1]
    client = HubClient(hub.url)
    client.login(student, hub.password)
    client.start_server(student)
    pid = localhub.status(hub.course).servers[student]
    assert pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name == student
    if cgroups.detect_version() == 0:
        pytest.skip("no writable cgroup hierarchy: the spawner falls back to RLIMITs")
    (group,) = [g for g in cgroups.existing_groups() if g.user == student]
    assert pid in cgroups.group_pids(group)
    h = hub.course.config.hub
    if group.version == 1:
        limit = Path(f"/sys/fs/cgroup/memory/{cgroups.PARENT}/{student}/memory.limit_in_bytes").read_text()
        pids = Path(f"/sys/fs/cgroup/pids/{cgroups.PARENT}/{student}/pids.max").read_text()
    else:
        limit = (group.dirs[0] / "memory.max").read_text()
        pids = (group.dirs[0] / "pids.max").read_text()
    assert int(limit) == int(h.mem_limit_gb * 1024) * 1024 * 1024
    assert int(pids) == hub.course.config.limits.max_processes


def test_down_leaves_no_process_and_up_comes_back(hub):
    """Does `down` stop hub, proxy, service and every user server; does `up` then work again?"""
    paths = hub_paths(hub.course)
    st = localhub.status(hub.course)
    pids = [p for p in (st.hub_pid, st.proxy_pid, st.service_pid, *st.servers.values()) if p]
    assert _course_cli("hub", "down").returncode == 0
    time.sleep(0.5)
    assert [p for p in pids if localhub.pid_alive(p)] == []
    assert not localhub.http_ok(f"{hub.url}/hub/health")
    for group in cgroups.existing_groups():
        assert cgroups.group_pids(group) == set()
    users = {hub.course.config.hub.instructor, *hub.students}
    assert _live_processes_of(users) == []
    assert not paths.hub_pid.exists()
    assert _course_cli("hub", "status").returncode == 1
    up = subprocess.run([sys.prefix + "/bin/course", "hub", "up"], cwd=REPO, capture_output=True, text=True,
                        timeout=180, env={**os.environ, "COURSE_ROOT": str(REPO), "COURSE_PROFILE": "reduced",
                                          "COURSE_WEIGHTS_MODE": "stand-in"})
    assert up.returncode == 0, up.stderr
