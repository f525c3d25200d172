"""Per-user resource groups for the local hub: memory, processes and CPU.

JupyterHub's LocalProcessSpawner accepts ``mem_limit`` and ``cpu_limit`` but enforces
neither (it only exports them as environment variables). This module makes them real
on one machine: one group per user under ``<hierarchy>/course-hub/<user>``, created
by the hub (root) before the spawn; the child joins it between fork and exec. The
cgroup mechanics (v1 or v2, which files) are :mod:`autograder.cgroups`; the hub's policy
is here:

- best effort: a v1 controller that cannot be set up is left out (and named by
  :attr:`UserGroup.enforced`); the groups are not nested in the hub's own group, and swap
  is not counted on v1 (the groups are reused across spawns).
- Only with a writable hierarchy that has a memory controller; else :func:`prepare_group`
  returns an empty group and the spawner falls back to RLIMITs (never RLIMIT_AS, which
  breaks ``import tensorflow``).
- Killing never freezes or waits (the hub calls it from its event loop).

Not done here: GPU limits (production sets ``nvidia.com/gpu`` on the pod).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autograder import cgroups
from autograder.cgroups import CGROUP_ROOT

PARENT = "course-hub"


@dataclass(frozen=True)
class UserGroup:
    """Where one user's server lives (``group`` None when no usable hierarchy exists)."""

    user: str
    group: cgroups.Cgroup | None = None

    @property
    def version(self) -> int:
        """1, 2, or 0 when no limit is enforced."""
        return self.group.version if self.group is not None and self.dirs else 0

    @property
    def dirs(self) -> tuple[Path, ...]:
        return self.group.dirs if self.group is not None else ()

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self.dirs)

    @property
    def enforced(self) -> tuple[str, ...]:
        """Names of the limits this group actually enforces."""
        if isinstance(self.group, cgroups.CgroupV1):
            return tuple(sorted(self.group.by_controller))
        return ("cpu", "memory", "pids") if self.version == 2 else ()


def detect_version(root: Path = CGROUP_ROOT) -> int:
    """1 or 2 for a writable hierarchy with a memory controller, else 0."""
    version = cgroups.detect_version(root)
    usable = "memory" in cgroups.controllers(root) and cgroups.writable(root)
    return version if usable else 0


def prepare_group(user: str, *, mem_limit_bytes: int, pids_max: int, cpu_limit: float,
                  root: Path = CGROUP_ROOT, parent: str = PARENT) -> UserGroup:
    """Create (or reuse) the user's group and set its limits; best effort per controller."""
    if detect_version(root) == 0:
        return UserGroup(user=user)
    limits = cgroups.Limits(memory_bytes=mem_limit_bytes, pids_max=pids_max, cpus=cpu_limit)
    group = cgroups.create(user, limits, parent=parent, best_effort=True, root=root)
    return UserGroup(user=user, group=group)


def join_group(group: UserGroup) -> None:
    """Move the calling process into the group (runs between fork and exec)."""
    if group.group is not None:
        group.group.join()


def group_pids(group: UserGroup) -> set[int]:
    """Every process still in the group (kernels included, whatever session they made)."""
    return set(group.group.pids()) if group.group is not None else set()


def kill_group(group: UserGroup) -> int:
    """SIGKILL everything left in the group; returns how many processes were signalled."""
    return group.group.signal_all() if group.group is not None else 0


def existing_groups(root: Path = CGROUP_ROOT, *, parent: str = PARENT) -> list[UserGroup]:
    """The user groups left under ``course-hub`` (for ``course hub down``)."""
    version = detect_version(root)
    by_user: dict[str, dict[str, Path]] = {}
    if version == 1:
        for controller in ("memory", "pids", "cpu"):
            holder = root / controller / parent
            if holder.is_dir():
                for folder in holder.iterdir():
                    if folder.is_dir():
                        by_user.setdefault(folder.name, {})[controller] = folder
        return [UserGroup(u, cgroups.CgroupV1(d)) for u, d in sorted(by_user.items())]
    if version == 2 and (root / parent).is_dir():
        return [UserGroup(f.name, cgroups.CgroupV2(f))
                for f in sorted((root / parent).iterdir()) if f.is_dir()]
    return []


def remove_group(group: UserGroup) -> None:
    """Kill what is left in the group and remove its folders."""
    if group.group is not None:
        group.group.remove()
