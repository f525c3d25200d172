"""Per-user resource groups for the local hub: memory, processes and CPU (cgroup v1 or v2).

JupyterHub's LocalProcessSpawner accepts ``mem_limit`` and ``cpu_limit`` but enforces
neither (it only exports them as environment variables). This module makes them real
on one machine: one group per user under ``<hierarchy>/course-hub/<user>``, created
by the hub (root) before the spawn; the child joins it between fork and exec.

- cgroup v1 (this machine kind): ``memory.limit_in_bytes``, ``pids.max``,
  ``cpu.cfs_quota_us``, one directory per controller.
- cgroup v2 (unified): ``memory.max``, ``pids.max``, ``cpu.max`` in one directory,
  after enabling the controllers in the parents' ``cgroup.subtree_control``.
- Neither: :func:`prepare_group` returns an empty group and the spawner falls back to
  RLIMITs (never RLIMIT_AS, which breaks ``import tensorflow``).

Not done here: GPU limits (production sets ``nvidia.com/gpu`` on the pod).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "course-hub"
_CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class UserGroup:
    """Where one user's server lives; ``procs_files`` are the files its pid is written to."""

    user: str
    version: int  # 1, 2, or 0 when no usable hierarchy exists
    dirs: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self.dirs)

    @property
    def enforced(self) -> tuple[str, ...]:
        """Names of the limits this group actually enforces."""
        if self.version == 0:
            return ()
        names = {d.parent.parent.name for d in self.dirs} if self.version == 1 else {"memory", "pids", "cpu"}
        return tuple(sorted(names))


def detect_version(root: Path = CGROUP_ROOT) -> int:
    """1 or 2 for a writable hierarchy with a memory controller, else 0."""
    if (root / "memory" / "memory.limit_in_bytes").exists() and os.access(root / "memory", os.W_OK):
        return 1
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split() and os.access(root, os.W_OK):
        return 2
    return 0


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def prepare_group(user: str, *, mem_limit_bytes: int, pids_max: int, cpu_limit: float,
                  root: Path = CGROUP_ROOT, parent: str = PARENT) -> UserGroup:
    """Create (or reuse) the user's group and set its limits; best effort per controller."""
    version = detect_version(root)
    dirs: list[Path] = []
    if version == 1:
        settings = {
            "memory": {"memory.limit_in_bytes": str(mem_limit_bytes)},
            "pids": {"pids.max": str(pids_max)},
            "cpu": {"cpu.cfs_period_us": str(_CPU_PERIOD_US),
                    "cpu.cfs_quota_us": str(int(cpu_limit * _CPU_PERIOD_US))},
        }
        for controller, values in settings.items():
            folder = root / controller / parent / user
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            if all(_write(folder / name, value) for name, value in values.items()):
                dirs.append(folder)
    elif version == 2:
        holder_dir = root / parent
        holder_dir.mkdir(exist_ok=True)
        for holder in (root, holder_dir):
            _write(holder / "cgroup.subtree_control", "+memory +pids +cpu")
        folder = holder_dir / user
        folder.mkdir(exist_ok=True)
        _write(folder / "memory.max", str(mem_limit_bytes))
        _write(folder / "memory.swap.max", "0")
        _write(folder / "pids.max", str(pids_max))
        _write(folder / "cpu.max", f"{int(cpu_limit * _CPU_PERIOD_US)} {_CPU_PERIOD_US}")
        dirs.append(folder)
    return UserGroup(user=user, version=version if dirs else 0, dirs=tuple(dirs))


def join_group(group: UserGroup) -> None:
    """Move the calling process into the group (runs between fork and exec: no allocation-heavy work)."""
    pid = str(os.getpid())
    for procs in group.procs_files:
        with open(procs, "w") as fh:
            fh.write(pid)


def group_pids(group: UserGroup) -> set[int]:
    """Every process still in the group (kernels included, whatever session they made)."""
    pids: set[int] = set()
    for procs in group.procs_files:
        try:
            pids |= {int(p) for p in procs.read_text().split()}
        except OSError:
            continue
    return pids


def kill_group(group: UserGroup) -> int:
    """SIGKILL everything left in the group; returns how many processes were signalled."""
    killed = 0
    for pid in group_pids(group):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def existing_groups(root: Path = CGROUP_ROOT, *, parent: str = PARENT) -> list[UserGroup]:
    """The user groups left under ``course-hub`` (for ``course hub down``)."""
    version = detect_version(root)
    by_user: dict[str, list[Path]] = {}
    if version == 1:
        for controller in ("memory", "pids", "cpu"):
            holder = root / controller / parent
            if holder.is_dir():
                for folder in holder.iterdir():
                    if folder.is_dir():
                        by_user.setdefault(folder.name, []).append(folder)
    elif version == 2 and (root / parent).is_dir():
        for folder in (root / parent).iterdir():
            if folder.is_dir():
                by_user[folder.name] = [folder]
    return [UserGroup(user=u, version=version, dirs=tuple(d)) for u, d in sorted(by_user.items())]


def remove_group(group: UserGroup) -> None:
    """Kill what is left in the group and remove its folders (empty groups only can be removed)."""
    kill_group(group)
    for folder in group.dirs:
        for _ in range(50):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # processes still exiting
                time.sleep(0.05)
