"""The local hub's ``jupyterhub_config.py``, written from ``course_config.py``.

Decisions (the alternatives rejected in brackets):

- LocalProcessSpawner, via :class:`autograder.hosting.spawner.LimitedLocalProcessSpawner`
  so that ``mem_limit``/``cpu_limit`` are enforced by cgroups [stock spawner: silently
  ignores them; DockerSpawner: needs a Docker daemon the course machine may not have].
- ``shared-password`` authenticator with ``hub.demo_password`` for the listed users only
  [DummyAuthenticator's password is deprecated; PAM would need real passwords]. No hub
  admin user: the shared-password authenticator would need a second, 32-character admin
  password. The instructor's extra rights are the grading service's business.
- JupyterLab 4 (``/lab``) with nbgrader's Lab extensions; the news pop-up is switched
  off through ``share/jupyter/lab/settings/overrides.json`` in the venv.
- The single-user environment is the kit's own ``.venv`` (built from Debian's python3, so
  other uids can run it).
- The grading service is a *managed* service (``command``), so the hub starts and stops
  it and hands it an API token; the service holds the ``admin`` role through
  ``load_roles``. Users get ``access:services!service=<name>`` so its pages open for them.

The file is regenerated on every ``course hub up``; edit course_config.py instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from autograder.course.config import Course
from autograder.errors import HubError
from autograder.paths import env_prefix

#: Environment passed from ``course hub up`` to user servers and the grading service.
PASSED_ENV = ("COURSE_PROFILE", "COURSE_WEIGHTS_MODE", "COURSE_WEIGHTS_DIR")
KIT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class HubPaths:
    """Everything the local hub writes, in one folder (``hub.state_dir``)."""

    state: Path

    @property
    def config(self) -> Path:
        return self.state / "jupyterhub_config.py"

    @property
    def hub_pid(self) -> Path:
        return self.state / "jupyterhub.pid"

    @property
    def proxy_pid(self) -> Path:
        return self.state / "proxy.pid"

    @property
    def log(self) -> Path:
        return self.state / "jupyterhub.log"

    @property
    def servers(self) -> Path:
        """``<user>.pid`` of every running user server."""
        return self.state / "servers"

    @property
    def service(self) -> Path:
        """The grading service's queue, work folders and results (root only)."""
        return self.state / "service"

    @property
    def service_log(self) -> Path:
        return self.state / "service.log"


def hub_paths(course: Course) -> HubPaths:
    return HubPaths(state=course.hub_state_dir)


def proxy_command() -> Path:
    """configurable-http-proxy from the kit's node_modules (installed by bootstrap)."""
    for root in (KIT_ROOT, Path.cwd()):
        candidate = root / "node_modules" / ".bin" / "configurable-http-proxy"
        if candidate.exists():
            return candidate
    raise HubError(
        "configurable-http-proxy is not installed in node_modules/",
        hint="run `bash scripts/bootstrap.sh` (it runs `npm ci` from package.json)",
    )


def passed_env() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)}


def _service(course: Course, paths: HubPaths, path_env: str) -> dict[str, object]:
    """The grade-on-submit service, as the hub starts it (root, its own environment)."""
    h = course.config.hub
    return {
        "name": h.service_name,
        "url": f"http://{h.ip}:{h.service_port}",
        "command": [str(env_prefix() / "bin" / "python"), "-m", "autograder.hosting.service"],
        "environment": {
            "PATH": path_env,
            "COURSE_ROOT": str(course.root),
            "COURSE_HUB_STATE": str(paths.state),
            "PYTHONUNBUFFERED": "1",
            **passed_env(),
        },
        "oauth_no_confirm": True,
        "display": True,
    }


def render_hub_config(course: Course, paths: HubPaths) -> str:
    """The text of ``jupyterhub_config.py`` for the local hub."""
    h = course.config.hub
    venv = env_prefix()
    users = sorted({h.instructor, *h.students})
    path_env = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    user_env = {"PATH": path_env, **passed_env()}
    service = _service(course, paths, path_env)
    roles = [
        {"name": "admin", "services": [h.service_name]},
        {"name": "user", "scopes": ["self", f"access:services!service={h.service_name}"]},
    ]
    values: dict[str, object] = {
        "JupyterHub.ip": h.ip,
        "JupyterHub.port": h.port,
        "JupyterHub.hub_ip": h.ip,
        "JupyterHub.hub_port": h.hub_port,
        "JupyterHub.db_url": f"sqlite:///{paths.state / 'jupyterhub.sqlite'}",
        "JupyterHub.cookie_secret_file": str(paths.state / "jupyterhub_cookie_secret"),
        "JupyterHub.pid_file": str(paths.hub_pid),
        "JupyterHub.authenticator_class": "shared-password",
        "JupyterHub.spawner_class": "autograder.hosting.spawner.LimitedLocalProcessSpawner",
        "JupyterHub.services": [service],
        "JupyterHub.load_roles": roles,
        "JupyterHub.cleanup_servers": True,
        "ConfigurableHTTPProxy.command": [str(proxy_command())],
        "ConfigurableHTTPProxy.api_url": f"http://{h.ip}:{h.proxy_api_port}",
        "ConfigurableHTTPProxy.pid_file": str(paths.proxy_pid),
        "SharedPasswordAuthenticator.user_password": h.demo_password,
        "Authenticator.allowed_users": users,
        "Spawner.cmd": [str(venv / "bin" / "jupyterhub-singleuser")],
        "Spawner.default_url": "/lab",
        "Spawner.environment": user_env,
        "Spawner.mem_limit": f"{int(h.mem_limit_gb * 1024)}M",
        "Spawner.cpu_limit": h.cpu_limit,
        "Spawner.http_timeout": 60,
        "Spawner.start_timeout": 120,
        "LimitedLocalProcessSpawner.pids_limit": course.config.limits.max_processes,
        "LimitedLocalProcessSpawner.pid_dir": str(paths.servers),
    }
    lines = [
        '"""Generated by `course hub up` from course_config.py; regenerated on every up."""',
        "c = get_config()  # noqa: F821",
    ]
    for key, value in values.items():
        lines.append(f"c.{key} = {value!r}")
    lines.append("c.Authenticator.allowed_users = set(c.Authenticator.allowed_users)")
    return "\n".join(lines) + "\n"


LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
}


def write_lab_overrides(venv: Path | None = None) -> Path:
    """Switch Lab's news pop-up off for everyone using the venv (merging existing overrides)."""
    target = (venv or env_prefix()) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, object] = {}
    if target.exists():
        try:
            current = json.loads(target.read_text())
        except json.JSONDecodeError:
            current = {}
    current.update(LAB_OVERRIDES)
    target.write_text(json.dumps(current, indent=2) + "\n")
    target.chmod(0o644)
    return target
