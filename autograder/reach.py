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
from collections.abc import Iterable, Sequence
from pathlib import Path

STAGING = Path("/run/course-reach")
"""Root-owned mount points used inside private namespaces only (nothing is mounted on the
host): a needed path is bound here first, before its blocked ancestor is covered."""


def blocked_ancestor(path: Path) -> Path | None:
    """The topmost ancestor of ``path`` (itself excluded) that other users cannot traverse."""
    path = Path(os.path.abspath(path))
    for parent in reversed(path.parents):
        try:
            mode = parent.stat().st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return parent
    return None


def covers(paths: Iterable[Path]) -> dict[Path, list[Path]]:
    """Blocked ancestor -> the needed paths beneath it (a path under another needed one is
    reached through that one, so only the outermost are listed)."""
    needed = sorted({Path(os.path.realpath(p)) for p in paths if Path(p).exists()},
                    key=lambda p: len(p.parts))
    outer: list[Path] = []
    for path in needed:
        if not any(path == o or o in path.parents for o in outer):
            outer.append(path)
    plan: dict[Path, list[Path]] = {}
    for path in outer:
        ancestor = blocked_ancestor(path)
        if ancestor is not None:
            plan.setdefault(ancestor, []).append(path)
    return plan


def reach_script(paths: Iterable[Path]) -> str:
    """Shell commands (run as root, in a private mount namespace) that make ``paths``
    reachable by every uid at their own paths; empty when nothing is blocked."""
    plan = covers(paths)
    if not plan:
        return ""
    lines = [f"mkdir -p {shlex.quote(str(STAGING))}"]
    staged = []
    for n, (ancestor, targets) in enumerate(sorted(plan.items())):
        for m, target in enumerate(targets):
            stage = STAGING / f"{n}-{m}"
            staged.append((stage, target))
            lines.append(f"mkdir -p {shlex.quote(str(stage))} && "
                         f"mount --rbind {shlex.quote(str(target))} {shlex.quote(str(stage))}")
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m course-reach {shlex.quote(str(ancestor))}")
    for stage, target in staged:
        lines.append(f"mkdir -p {shlex.quote(str(target))} && "
                     f"mount --move {shlex.quote(str(stage))} {shlex.quote(str(target))}")
    return " && ".join(lines)


def reach_prefix(paths: Iterable[Path], *, unshare: Sequence[str] = ()) -> list[str]:
    """A command prefix (run by root) that runs the rest of the command line in a private
    mount namespace where ``paths`` are reachable by every uid; ``unshare`` adds namespaces
    (``--net``). Empty when nothing is blocked and no namespace is asked for."""
    script = reach_script(paths)
    if not script and not unshare:
        return []
    prefix = ["unshare", *unshare]
    if not script:
        return [*prefix, "--"]
    return [*prefix, "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", script + ' && exec "$@"', "sh"]


def kit_paths() -> list[Path]:
    """What every process running the kit's Python needs: the venv and the kit's source."""
    import sys

    kit = Path(__file__).resolve().parents[1]
    paths = [kit]
    if sys.prefix != sys.base_prefix:
        paths.append(Path(sys.prefix))
    return paths
