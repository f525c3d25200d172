"""Can the unprivileged uids reach a checkout cloned inside a folder they cannot traverse,
without anything else in that folder becoming visible?"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autograder import reach

NOBODY = 65534


def _home(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A mode-700 'home' holding a checkout (755, with a readable file) and a private file."""
    home = tmp_path / "home"
    kit = home / "deep" / "repo"
    kit.mkdir(parents=True)
    (kit / "course_config.py").write_text("COURSE = 1\n")
    (kit / "course_config.py").chmod(0o644)
    (home / "deep").chmod(0o700)
    (home / "private.txt").write_text("secret")
    (home / "private.txt").chmod(0o644)
    kit.chmod(0o755)
    home.chmod(0o700)
    return home, kit, home / "private.txt"


def test_the_topmost_blocked_ancestor_is_found(tmp_path):
    """Is the highest folder others cannot traverse the one to cover, and nothing when open?"""
    home, kit, _ = _home(tmp_path)
    assert reach.blocked_ancestor(kit / "course_config.py") in (home, *home.parents)
    assert reach.blocked_ancestor(Path("/usr/bin/python3")) is None
    assert reach.reach_prefix([Path("/usr/bin")]) == []
    plan = reach.covers([kit, kit / "course_config.py"])
    assert list(plan.values()) == [[kit]]  # a path inside another is reached through it


def _as_nobody(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces and setpriv need root")
def test_nobody_reaches_the_checkout_and_nothing_else(tmp_path):
    """Does nobody read the checkout's file at its own path through the prefix (and fail
    without it), while the home's other files stay out of reach, and the host is unchanged?"""
    home, kit, private = _home(tmp_path)
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    plain = _as_nobody([*drop, "cat", str(kit / "course_config.py")])
    assert plain.returncode != 0 and "Permission denied" in plain.stderr
    prefix = reach.reach_prefix([kit])
    assert prefix[:2] == ["unshare", "--mount"]
    seen = _as_nobody([*prefix, *drop, "cat", str(kit / "course_config.py")])
    assert seen.returncode == 0 and seen.stdout == "COURSE = 1\n", seen.stderr
    hidden = _as_nobody([*prefix, *drop, "cat", str(private)])
    assert hidden.returncode != 0 and "No such file" in hidden.stderr
    assert private.read_text() == "secret" and oct(home.stat().st_mode)[-3:] == "700"
    mounts = Path("/proc/self/mounts").read_text()
    assert "course-reach" not in mounts


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces and setpriv need root")
def test_a_single_file_is_reached_and_group_folders_are_left_alone(tmp_path):
    """Is a lone file (an answer key, a weights file) under a blocked folder reachable, and a
    folder its group may traverse left alone for a member of that group?"""
    home, kit, private = _home(tmp_path)
    key = home / "deep" / "key.json"
    key.write_text("{}")
    key.chmod(0o644)
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    seen = _as_nobody([*reach.reach_prefix([key]), *drop, "cat", str(key)])
    assert seen.returncode == 0 and seen.stdout == "{}", seen.stderr
    shared = Path(tempfile.mkdtemp(prefix="course-reach-test-"))  # under /tmp, not tmp_path
    try:
        (shared / "inner").mkdir()
        os.chown(shared, 0, 4242)
        shared.chmod(0o750)
        assert reach.covers([shared / "inner"]) == {shared: [shared / "inner"]}
        assert reach.covers([shared / "inner"], gids=[4242]) == {}
    finally:
        shutil.rmtree(shared)
