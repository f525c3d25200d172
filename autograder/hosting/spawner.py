"""LocalProcessSpawner that enforces what it can of ``mem_limit`` / ``cpu_limit`` locally.

Stock LocalProcessSpawner ignores both limits (JupyterHub documents this). Here each user
server joins a cgroup (:mod:`autograder.hosting.cgroups`) between fork and exec, so the
server and every kernel it starts share one memory cap, one process cap and one CPU
quota. Where no writable cgroup hierarchy exists it falls back to per-process RLIMITs
(RLIMIT_DATA for memory, RLIMIT_NPROC for processes; never RLIMIT_AS, which breaks
TensorFlow) and logs loudly that the limits are weaker. Production enforces the same
limits through Kubernetes (see ``hub/values.yaml``).

The spawner also writes ``<pid_dir>/<user>.pid`` so ``course hub down`` can stop any
server the hub left behind.

Where the kit (and so the venv) was cloned inside a folder users cannot traverse, the
server starts as root in a private mount namespace that reaches it (``autograder.reach``)
and drops to the user with ``setpriv`` there, instead of in ``preexec_fn``.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any, Callable

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Integer, Unicode

from autograder import reach
from autograder.hosting import cgroups

# Run as the user, from their home, the command JupyterHub joined into one string ($0).
_AS_USER = 'cd "$HOME" 2>/dev/null; eval "exec $0"'


class LimitedLocalProcessSpawner(LocalProcessSpawner):
    """A local spawner whose memory, process and CPU limits are real."""

    pids_limit = Integer(512, config=True, help="Processes and threads of one user server together.")
    pid_dir = Unicode("", config=True, help="Folder for <user>.pid files (empty: none).")

    def _limits(self) -> tuple[int, int, float]:
        mem = int(self.mem_limit or 0) or 8 * 1024**3
        cpu = float(self.cpu_limit or 0) or float(os.cpu_count() or 1)
        return mem, int(self.pids_limit), cpu

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        setuid = super().make_preexec_fn(name)
        mem, pids, cpu = self._limits()
        group = cgroups.prepare_group(name, mem_limit_bytes=mem, pids_max=pids, cpu_limit=cpu)
        self._group = group
        if group.version == 0:
            self.log.warning("No writable cgroup hierarchy: %s's server gets per-process RLIMITs only", name)
        else:
            self.log.info("Server of %s in cgroup v%d (%s)", name, group.version, ", ".join(group.enforced))

        drop_here = not self.shell_cmd  # else setpriv drops root, after the namespace

        def preexec() -> None:
            cgroups.join_group(group)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
            if "pids" not in group.enforced:
                resource.setrlimit(resource.RLIMIT_NPROC, (pids, pids))
            if drop_here:
                setuid()

        return preexec

    def _reaching_shell(self) -> list[str]:
        """The ``shell_cmd`` that reaches an untraversable checkout, or [] when none is."""
        prefix = reach.reach_prefix(reach.kit_paths()) if os.geteuid() == 0 else []
        if not prefix:
            return []
        import pwd

        account = pwd.getpwnam(self.user.name)
        return [*prefix, "setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
                "--init-groups", "--", "/bin/sh", "-c", _AS_USER]

    async def start(self) -> Any:
        self.shell_cmd = self._reaching_shell()
        address = await super().start()
        if self.pid_dir:
            folder = Path(self.pid_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{self.user.name}.pid").write_text(str(self.pid))
        return address

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        group = getattr(self, "_group", None)
        if group is not None and cgroups.kill_group(group):
            self.log.info("Killed processes %s's server left behind", self.user.name)
        if self.pid_dir:
            (Path(self.pid_dir) / f"{self.user.name}.pid").unlink(missing_ok=True)
