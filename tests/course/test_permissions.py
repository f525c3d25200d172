"""On a machine shared with students, the course's secrets are closed to them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autograder import reach
from autograder.course.config import load_course
from autograder.course.permissions import ensure_grader_group, protect_course_files

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def can_read(path: Path, *, groups: str | None = None) -> bool:
    """Can an unprivileged uid (nobody; optionally with supplementary groups) read ``path``?
    What is judged is the course's own modes: a checkout cloned inside a folder nobody cannot
    traverse is first made reachable, as the kit itself does (autograder/reach.py)."""
    group_args = [f"--groups={groups}"] if groups else ["--clear-groups"]
    reach_parents = reach.reach_prefix([ROOT])  # the checkout bound whole: its modes intact
    cmd = [*reach_parents, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", *group_args,
           "--inh-caps=-all", "cat", str(path)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture()
def course_root():
    root = Path(tempfile.mkdtemp(prefix="course-perm-"))
    root.chmod(0o755)
    shutil.copy(ROOT / "course_config.py", root / "course_config.py")
    files = {
        "solution": root / "source" / "cnn_transfer" / "cnn_transfer.ipynb",
        "grading_image": root / "datasets" / "hidden" / "grading" / "shoes" / "0000.jpg",
        "key": root / "answer_keys" / "cnn_transfer" / "full-imagenet.json",
        "results": root / "autograded" / "alice" / "results.json",
        "gradebook": root / "gradebook.db",
        "public": root / "release" / "cnn_transfer" / "cnn_transfer.ipynb",
        "embeddings": root / ".course-state" / "embeddings" / "grading.npz",
        "demo_solution": root / ".course-state" / "demo" / "submissions" / "reference" / "nb.ipynb",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("secret?")
    # the real notebook: the course's points are read from it when the course loads
    shutil.copy(ROOT / "source" / "cnn_transfer" / "cnn_transfer.ipynb", files["solution"])
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # as a careless checkout would have it
    yield root, files
    shutil.rmtree(root, ignore_errors=True)


def test_secrets_are_closed_and_the_checker_keeps_what_it_needs(course_root):
    """After protection, can another user read nothing secret, the checker's group read exactly
    the hidden split and the keys, and everyone still read the release?"""
    root, files = course_root
    assert all(can_read(p) for p in files.values())  # the hole being closed
    protect_course_files(load_course(root))
    gid = str(ensure_grader_group())
    for name in ("solution", "grading_image", "key", "results", "gradebook"):
        assert not can_read(files[name]), name
    assert can_read(files["public"])
    assert can_read(files["grading_image"], groups=gid)
    assert can_read(files["key"], groups=gid)
    assert not can_read(files["solution"], groups=gid)
    assert not can_read(files["results"], groups=gid)
    rubric = ROOT / "autograder" / "rubric" / "cnn_transfer" / "test_q1.py"
    assert not can_read(rubric) and can_read(rubric, groups=gid)


def can_list(path: Path, *, groups: str | None = None) -> bool:
    """Can nobody (optionally with supplementary groups) list the folder ``path``?"""
    group_args = [f"--groups={groups}"] if groups else ["--clear-groups"]
    cmd = [*reach.reach_prefix([ROOT]), "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
           *group_args, "--inh-caps=-all", "ls", str(path)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def test_the_state_folder_is_closed_to_others_and_passable_by_the_checker(course_root):
    """Can another user no longer even list .course-state (the demo's submissions, the hub's
    state, the embeddings), while the checker's group still reads the embeddings in it and
    not the demo's reference solution?"""
    root, files = course_root
    state = load_course(root).state_dir
    assert can_list(state) and can_read(files["demo_solution"])  # the hole being closed
    protect_course_files(load_course(root))
    gid = str(ensure_grader_group())
    assert not can_list(state)
    assert not can_read(files["embeddings"]) and not can_read(files["demo_solution"])
    assert can_read(files["embeddings"], groups=gid)
    assert not can_read(files["demo_solution"], groups=gid)


@contextlib.contextmanager
def read_only(root: Path):
    """``root`` bind-mounted read-only over itself, as a production worker mounts the grader's
    material (hub/grading-cluster.yaml: the course-grader-data volume, readOnly)."""
    subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(root)], check=True)
        yield root
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_a_read_only_copy_is_left_as_mounted_and_what_the_checker_cannot_read_is_named(course_root):
    """A grading worker's material is on a read-only volume: does protection leave it as it was
    seeded (it raised EROFS there, failing every submission), and does the worker's check name
    exactly the files the checker (nobody, in course-grader) could not read as they are?"""
    from autograder.course.permissions import read_only as on_read_only_fs
    from autograder.course.permissions import unreadable_by_checker

    root, files = course_root
    files["key"].chmod(0o600)  # seeded without `chmod -R a+rX`
    closed_dir = files["grading_image"].parent
    closed_dir.chmod(0o700)
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    with read_only(root):
        assert on_read_only_fs(files["key"])
        course = load_course(root)
        protect_course_files(course)  # no EROFS
        assert {p: p.stat().st_mode for p in [root, *root.rglob("*")]} == modes
        closed = unreadable_by_checker(course)
        assert closed == [closed_dir, files["key"]], closed
        assert not can_read(files["key"], groups=str(ensure_grader_group()))  # the check is right
        assert can_read(files["embeddings"], groups=str(ensure_grader_group()))
    protect_course_files(load_course(root))  # writable again: closed as before
    assert not can_read(files["solution"])


def test_a_worker_refuses_to_start_on_a_read_only_copy_the_checker_cannot_read(course_root, monkeypatch):
    """Does a grading worker's preload refuse a read-only copy seeded without `chmod -R a+rX`,
    naming the file and the fix, before the scheduler sends it anything (every submission's
    checker would otherwise fail on it)?"""
    from types import SimpleNamespace

    from autograder.grading import dask_worker, pipeline

    root, files = course_root
    files["key"].chmod(0o600)
    # Only the readability check is under test: the copy's keys are not real ones.
    monkeypatch.setattr(pipeline, "make_context", lambda *a, **k: SimpleNamespace(
        assignment=SimpleNamespace(uses_images=False)))
    with read_only(root):
        with pytest.raises(dask_worker.WorkerRefused) as info:
            dask_worker.check_course_copy(root, assignments=["cnn_transfer"])
    said = str(info.value)
    assert f"is read-only and the checker (nobody, in course-grader) cannot read: {files['key']}" in said
    assert "chmod -R a+rX" in said
    files["key"].chmod(0o644)  # readable as seeded: the same copy is taken
    with read_only(root):
        assert dask_worker.check_course_copy(root, assignments=["cnn_transfer"]) == ["cnn_transfer"]
