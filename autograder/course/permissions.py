"""Who may read what in the course repository, on a machine shared with students.

The local hub gives students real Unix accounts, and the venv they run lives in the
course repository, so the repository must stay traversable by everyone. What must not
be readable by them is closed here, idempotently, every time grading or the hub starts:

- private to root: the source notebook (solutions, hidden tests), graded output,
  and the gradebook;
- readable by root and the ``course-grader`` group only: what the confined checker
  reads (the hidden grading split, the rubric, answer keys, trusted embeddings, and
  each job's exported facts). The checker runs as ``nobody`` with that one group.

- closed to others but passable by that group: ``.course-state/``, which holds both kinds
  (the trusted embeddings; the demo's submissions and the hub's state), so that no other
  user can even list what is in it.

Everything else (release/, the kit's code, the venv, the student data) stays public.
Rejected: moving the venv out of the repository (a second copy of every dependency
to keep in step) and per-file ACLs (not on every filesystem).

A folder on a read-only filesystem is left as it is mounted: a production grading worker gets
the grader's material from a read-only volume (hub/grading-cluster.yaml), whose modes were set
when it was seeded. :func:`unreadable_by_checker` names what the checker could not read there,
and the worker refuses to start with that list (``dask_worker.check_course_copy``).
"""

from __future__ import annotations

import grp
import os
import subprocess
from pathlib import Path

from autograder.course.config import Course
from autograder.errors import SandboxUnavailable

GRADER_GROUP = "course-grader"
PRIVATE_MODE = 0o700
GROUP_DIR_MODE = 0o750
GROUP_FILE_MODE = 0o640
NOBODY_UID = 65534
"""The uid the confined checker runs as (``grading.check``), with ``course-grader`` only."""


def ensure_grader_group() -> int:
    """The gid of ``course-grader``, created as a system group where missing (root only)."""
    try:
        return grp.getgrnam(GRADER_GROUP).gr_gid
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise SandboxUnavailable(f"the {GRADER_GROUP} group does not exist",
                                 hint="run `sudo course sandbox setup`")
    subprocess.run(["groupadd", "--system", GRADER_GROUP], check=True, capture_output=True)
    return grp.getgrnam(GRADER_GROUP).gr_gid


def private_paths(course: Course) -> list[Path]:
    return [course.source_root, course.autograded_dir, course.gradebook_file,
            course.submitted_dir, course.hub_state_dir, course.demo_dir]


def grader_paths(course: Course) -> list[Path]:
    from autograder.course.datasets import grading_split_dir

    rubrics = {course.rubric_dir(a.assignment_id).parent for a in course.config.assignments}
    return [grading_split_dir(course).parent, course.answer_key_dir, *sorted(rubrics),
            course.embeddings_dir]


def passage_paths(course: Course) -> list[Path]:
    """Folders holding both private and grader paths: their contents are judged one by one."""
    return [course.state_dir]


def protect_course_files(course: Course) -> None:
    """Close the secrets to other users (root only; a no-op for anyone else). What lies on a
    read-only filesystem is left as it was mounted (see the module's docstring)."""
    if os.geteuid() != 0:
        return
    gid = ensure_grader_group()
    for path in private_paths(course):
        close_private(path)
    for top in grader_paths(course):
        if top.is_symlink() or not top.exists():
            continue
        share_with_grader(top, gid=gid)
    for folder in passage_paths(course):
        if folder.is_dir() and not folder.is_symlink() and not read_only(folder):
            os.chown(folder, 0, gid)
            folder.chmod(GROUP_DIR_MODE)


def read_only(path: Path) -> bool:
    """Is ``path`` on a filesystem mounted read-only?"""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def unreadable_by_checker(course: Course, *, limit: int = 5) -> list[Path]:
    """The first ``limit`` files and folders of the checker's material (:func:`grader_paths`)
    that lie on a read-only filesystem, where this kit cannot share them with the checker, and
    that the checker (``nobody`` in ``course-grader``) could not read (or traverse) as they are."""
    try:
        gid = grp.getgrnam(GRADER_GROUP).gr_gid
    except KeyError:
        gid = None
    found: list[Path] = []
    for top in grader_paths(course):
        if top.is_symlink() or not top.exists() or not read_only(top):
            continue
        for path in [top, *sorted(top.rglob("*"))]:
            if path.is_symlink():
                continue
            st = path.stat()
            need = 0o5 if path.is_dir() else 0o4  # read, and traverse a folder
            if st.st_uid == NOBODY_UID:
                bits = st.st_mode >> 6
            elif gid is not None and st.st_gid == gid:
                bits = st.st_mode >> 3
            else:
                bits = st.st_mode
            if bits & need != need:
                found.append(path)
                if len(found) >= limit:
                    return found
    return found


def close_private(path: Path) -> None:
    """``path`` owned by root and closed to everyone else (what is inside stays as it is:
    nobody else can reach it any more)."""
    if path.is_symlink() or not path.exists() or read_only(path):
        return
    os.chown(path, 0, 0)
    path.chmod(PRIVATE_MODE if path.is_dir() else 0o600)


def share_with_grader(top: Path, *, gid: int | None = None) -> None:
    """``root:course-grader``, group-readable, closed to others, for ``top`` and below (left
    as mounted on a read-only filesystem)."""
    if read_only(top):
        return
    gid = ensure_grader_group() if gid is None else gid
    for path in [top, *top.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, 0, gid)
        path.chmod(GROUP_DIR_MODE if path.is_dir() else GROUP_FILE_MODE)
