"""``course hub up | down | status``: a real JupyterHub on this machine, for demos and tests.

What ``up`` does, in order (each step idempotent, so a second ``up`` is harmless and
only reports the running hub):

1. create the Unix users (instructor + students; homes 700) and their nbgrader config;
2. copy ``source/`` and ``release/`` into the instructor's course folder;
3. prepare the hardened exchange (:mod:`autograder.hosting.accounts`);
4. switch Lab's news pop-up off; write ``jupyterhub_config.py`` into ``hub.state_dir``;
5. start ``jupyterhub`` in its own session (``setsid``), wait for ``/hub/health`` and
   the grading service's health page.

``down`` sends SIGTERM to the hub (it stops the user servers, the proxy and the managed
service), then stops whatever is left by PID: user servers from ``servers/<user>.pid``,
the proxy, the service, and every process still in a user's cgroup.

Limits: LocalProcessSpawner does not enforce ``mem_limit``/``cpu_limit``. This kit's
spawner puts each user server in a cgroup (memory, pids, CPU quota) or, without cgroups,
sets RLIMITs; production enforces the limits through Kubernetes (``hub/values.yaml``).

Not done here: grading (``autograder.hosting.service``), production (``render``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from autograder.course.config import Course, check_config
from autograder.course.permissions import protect_course_files
from autograder.errors import HubError
from autograder.hosting import accounts, cgroups
from autograder.hosting.hubconfig import HubPaths, hub_paths, render_hub_config, write_lab_overrides
from autograder.paths import env_prefix

LIMITS_NOTE = (
    "LocalProcessSpawner itself does not enforce mem_limit/cpu_limit; this local hub puts "
    "each user server in a cgroup (memory {mem}, {pids} processes, {cpu} CPUs){fallback}. "
    "Production enforces the limits through Kubernetes (hub/values.yaml)."
)
HEALTH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HubInfo:
    """What ``up`` and ``status`` report."""

    url: str
    users: tuple[str, ...]
    instructor: str
    password: str
    service_url: str
    state_dir: Path
    hub_pid: int | None
    already_running: bool = False
    limits_note: str = ""


@dataclass(frozen=True)
class HubStatus:
    running: bool
    healthy: bool
    url: str
    hub_pid: int | None
    proxy_pid: int | None
    service_pid: int | None
    servers: dict[str, int] = field(default_factory=dict)
    """User name -> PID of each running user server."""


@dataclass(frozen=True)
class DownReport:
    was_running: bool
    hub_stopped: bool
    killed: tuple[str, ...] = ()
    """What had to be stopped by PID after the hub was gone."""


def hub_url(course: Course) -> str:
    h = course.config.hub
    return f"http://{h.ip}:{h.port}"


def service_url(course: Course) -> str:
    return f"{hub_url(course)}/services/{course.config.hub.service_name}/"


def read_pid(path: Path) -> int | None:
    """The PID in ``path`` if that process is alive, else ``None``."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def http_ok(url: str, *, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _hub_problems(course: Course) -> list[str]:
    return check_config(course, sections=("hub",))


def prepare_machine(course: Course, paths: HubPaths) -> None:
    """Users, exchange, Lab settings and the hub config (steps 1-4 of ``up``)."""
    h = course.config.hub
    protect_course_files(course)  # students get shells: solutions and hidden data stay closed
    instructor = accounts.ensure_account(h.instructor)
    accounts.prepare_instructor(course, instructor)
    for name in h.students:
        accounts.prepare_student(course, accounts.ensure_account(name))
    accounts.prepare_exchange(course, instructor)
    write_lab_overrides()
    for folder in (paths.state, paths.servers, paths.service):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    paths.config.write_text(render_hub_config(course, paths))


def limits_note(course: Course) -> str:
    h = course.config.hub
    version = cgroups.detect_version()
    fallback = "" if version else " — no writable cgroups here: per-process RLIMITs only"
    return LIMITS_NOTE.format(mem=f"{h.mem_limit_gb:g} GB", pids=course.config.limits.max_processes,
                              cpu=f"{h.cpu_limit:g}", fallback=fallback)


def _info(course: Course, paths: HubPaths, *, already: bool) -> HubInfo:
    h = course.config.hub
    return HubInfo(
        url=f"{hub_url(course)}/hub/login", users=(h.instructor, *h.students), instructor=h.instructor,
        password=h.demo_password, service_url=service_url(course), state_dir=paths.state,
        hub_pid=read_pid(paths.hub_pid), already_running=already, limits_note=limits_note(course),
    )


def up(course: Course, *, timeout_s: float = HEALTH_TIMEOUT_S) -> HubInfo:
    """Start the local hub (as root); a no-op that reports the hub when it already runs."""
    problems = _hub_problems(course)
    if problems:
        raise HubError("course_config.py has hub problems:\n  " + "\n  ".join(problems),
                       hint="fix the hub fields, then run `course config check`")
    paths = hub_paths(course)
    health = f"{hub_url(course)}/hub/health"
    if read_pid(paths.hub_pid) is not None:
        if http_ok(health):
            return _info(course, paths, already=True)
        raise HubError(f"a hub process (pid file {paths.hub_pid}) runs but {health} does not answer",
                       hint="run `course hub down`, then `course hub up`")
    if os.geteuid() != 0:
        raise HubError("`course hub up` must run as root (it creates Unix users and spawns as them)",
                       hint="sudo .venv/bin/course hub up")
    if http_ok(health):
        raise HubError(f"another hub already answers at {health}",
                       hint="stop it, or change hub.port in course_config.py")
    prepare_machine(course, paths)
    log = open(paths.log, "ab")
    process = subprocess.Popen(
        [str(env_prefix() / "bin" / "jupyterhub"), "-f", str(paths.config)],
        cwd=paths.state, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # setsid: survives the command; `down` stops it
    )
    log.close()
    paths.hub_pid.write_text(str(process.pid))
    deadline = time.monotonic() + timeout_s
    service_health = f"{service_url(course)}health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HubError(f"jupyterhub exited with status {process.returncode} while starting",
                           hint=f"read the end of {paths.log}:\n{_tail(paths.log)}")
        if http_ok(health) and http_ok(service_health):
            return _info(course, paths, already=False)
        time.sleep(0.5)
    down(course)
    raise HubError(f"the hub did not become healthy within {timeout_s:g} s",
                   hint=f"read {paths.log} (the service logs there too):\n{_tail(paths.log)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _server_pids(paths: HubPaths) -> dict[str, int]:
    servers: dict[str, int] = {}
    if paths.servers.is_dir():
        for pid_file in sorted(paths.servers.glob("*.pid")):
            pid = read_pid(pid_file)
            if pid is not None:
                servers[pid_file.stem] = pid
    return servers


def status(course: Course) -> HubStatus:
    paths = hub_paths(course)
    hub_pid = read_pid(paths.hub_pid)
    return HubStatus(
        running=hub_pid is not None,
        healthy=hub_pid is not None and http_ok(f"{hub_url(course)}/hub/health"),
        url=f"{hub_url(course)}/hub/login", hub_pid=hub_pid,
        proxy_pid=read_pid(paths.proxy_pid),
        service_pid=read_pid(paths.service / "service.pid"),
        servers=_server_pids(paths),
    )


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    return not pid_alive(pid)


def _terminate(pid: int, *, group: bool, timeout_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        if _wait_gone(pid, timeout_s):
            return


def down(course: Course, *, timeout_s: float = STOP_TIMEOUT_S) -> DownReport:
    """Stop the hub gracefully, then anything it left behind; leaves no process."""
    paths = hub_paths(course)
    hub_pid = read_pid(paths.hub_pid)
    stopped = False
    if hub_pid is not None:
        os.kill(hub_pid, signal.SIGTERM)  # the hub stops user servers, proxy and service
        stopped = _wait_gone(hub_pid, timeout_s)
        if not stopped:
            _terminate(hub_pid, group=True)
    killed: list[str] = []
    for user, pid in _server_pids(paths).items():
        _terminate(pid, group=True)
        killed.append(f"server of {user} (pid {pid})")
    for name, pid_file in (("proxy", paths.proxy_pid), ("service", paths.service / "service.pid")):
        pid = read_pid(pid_file)
        if pid is not None:
            _terminate(pid, group=False)
            killed.append(f"{name} (pid {pid})")
    for group in cgroups.existing_groups():
        if cgroups.kill_group(group):
            killed.append(f"processes left in the cgroup of {group.user}")
        deadline = time.monotonic() + 5.0
        while cgroups.group_pids(group) and time.monotonic() < deadline:  # return only once they are gone
            time.sleep(0.1)
    for pid_file in (paths.hub_pid, paths.proxy_pid, paths.service / "service.pid",
                     *paths.servers.glob("*.pid")):
        pid_file.unlink(missing_ok=True)
    return DownReport(was_running=hub_pid is not None, hub_stopped=stopped or hub_pid is None,
                      killed=tuple(killed))
