"""Let an unprivileged uid reach the kit from wherever it was cloned.

The sandbox uid, the checker (``nobody``), hub users and the instructor run Python from
the kit's ``.venv`` and read its files by absolute path. A clone inside a folder other
users cannot traverse (a root user's home, any ``mktemp -d``: mode 700) makes every one
of those paths unreachable to them, and the kit used to fail deep inside with "No module
named 'autograder'".

Rather than loosen the permissions of someone's home, a process that must drop root
first enters a private mount namespace (as root) where each such blocked ancestor is
covered by a small empty tmpfs that every uid may traverse, holding only bind mounts of
the paths that process needs, at their own absolute paths. Nothing else under the
blocked folder becomes visible, nothing on the host changes, and the namespace dies with
the process. Where no ancestor is blocked (the kit under /srv, /opt or /work), nothing
is added at all.

Rejected: ``chmod o+x`` on the parents (changes a user's home behind their back); ACLs
for each grading uid (the same, less visibly); moving the venv out of the checkout (the
checker and the kernel read course files under the checkout too).
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Iterable
from pathlib import Path

STAGING = Path("/run/course-reach")
"""Where, inside the private namespace only (a tmpfs mounted there), a needed path is bound
first, before its blocked ancestor is covered. On the host it stays an empty folder."""


def blocked_ancestor(path: Path, *, gids: Iterable[int] = ()) -> Path | None:
    """The topmost ancestor of ``path`` (itself excluded) that other users cannot traverse
    (a folder whose group is one of ``gids`` and lets its group through does not count)."""
    path = Path(os.path.abspath(path))
    gids = set(gids)
    for parent in reversed(path.parents):
        try:
            info = parent.stat()
        except OSError:
            return None
        through_group = info.st_mode & stat.S_IXGRP and info.st_gid in gids
        if not (info.st_mode & stat.S_IXOTH or through_group):
            return parent
    return None


def covers(paths: Iterable[Path], *, gids: Iterable[int] = ()) -> dict[Path, list[Path]]:
    """Blocked ancestor -> the needed paths beneath it (a path under another needed one is
    reached through that one, so only the outermost are listed)."""
    gids = tuple(gids)
    needed = sorted({Path(os.path.realpath(p)) for p in paths if Path(p).exists()},
                    key=lambda p: len(p.parts))
    outer: list[Path] = []
    for path in needed:
        if not any(path == o or o in path.parents for o in outer):
            outer.append(path)
    plan: dict[Path, list[Path]] = {}
    for path in outer:
        ancestor = blocked_ancestor(path, gids=gids)
        if ancestor is not None:
            plan.setdefault(ancestor, []).append(path)
    return plan


def reach_script(paths: Iterable[Path], *, gids: Iterable[int] = ()) -> str:
    """Shell commands (run as root, in a private mount namespace) that make ``paths``
    reachable by every uid (or by members of ``gids``) at their own paths; empty when
    nothing is blocked. A path may be a folder or a file."""
    plan = covers(paths, gids=gids)
    if not plan:
        return ""
    q = shlex.quote
    # The staging mount points live on a tmpfs of this namespace: nothing is left on the host.
    lines = [f"mkdir -p {q(str(STAGING))}",
             f"mount -t tmpfs -o mode=0700,size=1m course-reach-stage {q(str(STAGING))}"]
    staged = []
    for n, (ancestor, targets) in enumerate(sorted(plan.items())):
        for m, target in enumerate(targets):
            stage = STAGING / f"{n}-{m}"
            staged.append((stage, target))
            lines.append(f"{_make(stage, like=target)} && mount --rbind {q(str(target))} {q(str(stage))}")
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m course-reach {q(str(ancestor))}")
    for stage, target in staged:
        lines.append(f"{_make(target, like=target)} && mount --move {q(str(stage))} {q(str(target))}")
    return " && ".join(lines)


def _make(point: Path, *, like: Path) -> str:
    """Create the mount point ``point``: a folder for a folder, an empty file for a file."""
    q = shlex.quote
    if like.is_dir():
        return f"mkdir -p {q(str(point))}"
    return f"mkdir -p {q(str(point.parent))} && touch {q(str(point))}"


def reach_prefix(paths: Iterable[Path]) -> list[str]:
    """A command prefix (run by root) that runs the rest of the command line in a private
    mount namespace where ``paths`` are reachable by every uid; empty when nothing is
    blocked."""
    script = reach_script(paths)
    if not script:
        return []
    return ["unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", script + ' && exec "$@"', "sh"]


def kit_paths() -> list[Path]:
    """What every process running the kit's Python needs: the venv and the kit's source."""
    from autograder.paths import venv_dir

    kit = Path(__file__).resolve().parents[1]
    venv = venv_dir()
    return [kit, venv] if venv is not None else [kit]
