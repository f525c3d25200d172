"""Real Unix users, their nbgrader configuration, and the hardened nbgrader exchange.

Decisions:

- Users are real (``useradd --user-group``), homes mode 700, because LocalProcessSpawner
  runs each server as its own uid; per-user isolation is then the kernel's, not ours.
- The exchange root is ``01777``: nbgrader's ``release_assignment`` insists on ``rwx`` for
  everybody (it compares only the low nine bits, so the sticky bit is allowed and stops
  anyone from deleting a folder they do not own).
- The course folder in the exchange is prepared here, owned by the instructor (nbgrader
  checks that): ``outbound`` 0755, ``inbound`` 2733 (write + traverse, never list:
  nbgrader#978), ``feedback`` 0711 (traverse only: a feedback file is reachable only by
  its unguessable name; the grading service also makes each file the student's own,
  mode 0440, nbgrader#1202).
- Students' nbgrader config holds only the course id and exchange root. The instructor's
  holds ``CourseDirectory.root`` (formgrader needs it) pointing at a course folder in the
  instructor's home with copies of ``source/`` and ``release/``.

Not done here: starting anything (see :mod:`autograder.hosting.localhub`).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from autograder.course.config import RELEASE_DIR, SOURCE_DIR, Course
from autograder.errors import HubError

EXCHANGE_ROOT_MODE = 0o1777
OUTBOUND_MODE = 0o755
INBOUND_MODE = 0o2733
FEEDBACK_DIR_MODE = 0o711
HOME_MODE = 0o700


@dataclass(frozen=True)
class Account:
    """A Unix user of the local hub."""

    name: str
    uid: int
    gid: int
    home: Path


def lookup_account(name: str) -> Account | None:
    """The Unix user ``name``, or ``None`` when it does not exist."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=Path(entry.pw_dir))


def ensure_account(name: str) -> Account:
    """Create the user with a private home unless it exists; always re-tighten the home."""
    account = lookup_account(name)
    if account is None:
        if shutil.which("useradd") is None:
            raise HubError("useradd is not installed", hint="apt-get install -y passwd")
        done = subprocess.run(
            ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise HubError(f"useradd {name} failed: {done.stderr.strip()}",
                           hint="run `course hub up` as root")
        account = lookup_account(name)
        assert account is not None
    account.home.mkdir(parents=True, exist_ok=True)
    os.chown(account.home, account.uid, account.gid)
    os.chmod(account.home, HOME_MODE)
    return account


def _write_owned(path: Path, text: str, account: Account, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(path.parent, account.uid, account.gid)
    path.write_text(text)
    os.chown(path, account.uid, account.gid)
    os.chmod(path, mode)


def _chown_tree(root: Path, account: Account) -> None:
    for folder, dirs, files in os.walk(root):
        os.chown(folder, account.uid, account.gid)
        for name in files:
            os.chown(os.path.join(folder, name), account.uid, account.gid, follow_symlinks=False)


def student_nbgrader_config(course: Course) -> str:
    """The whole nbgrader config of a student: which course, which exchange."""
    h = course.config.hub
    return (
        "# Written by `course hub up` from course_config.py.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {course.config.course_id!r}\n"
        f"c.Exchange.root = {h.exchange_dir!r}\n"
    )


def instructor_nbgrader_config(course: Course, course_dir: Path) -> str:
    """The instructor's nbgrader config: the course folder (for formgrader) and the exchange."""
    h = course.config.hub
    return (
        "# Written by `course hub up` from course_config.py.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course_dir)!r}\n"
        f"c.CourseDirectory.course_id = {course.config.course_id!r}\n"
        f"c.Exchange.root = {h.exchange_dir!r}\n"
        "c.ExchangeReleaseAssignment.force = True\n"
    )


def instructor_course_dir(course: Course, account: Account) -> Path:
    return account.home / course.config.course_id


def prepare_instructor(course: Course, account: Account) -> Path:
    """Copy ``source/`` and ``release/`` into the instructor's course folder; write configs."""
    course_dir = instructor_course_dir(course, account)
    course_dir.mkdir(parents=True, exist_ok=True)
    for part in (SOURCE_DIR, RELEASE_DIR):
        src = course.root / part
        dest = course_dir / part
        # A fresh copy each time: the repository is the source of truth.
        shutil.rmtree(dest, ignore_errors=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            dest.mkdir()
    for assignment in course.config.assignments:
        released = course_dir / RELEASE_DIR / assignment.assignment_id
        if not released.is_dir() and (course.source_dir(assignment.assignment_id) / assignment.notebook).is_file():
            # No committed release/ yet: build one for the instructor only (the repo is untouched).
            from autograder.course.release import build_release

            build_release(course, assignment.assignment_id, out_dir=released)
    config = instructor_nbgrader_config(course, course_dir)
    (course_dir / "nbgrader_config.py").write_text(config)
    _chown_tree(course_dir, account)
    _write_owned(account.home / ".jupyter" / "nbgrader_config.py", config, account)
    return course_dir


def prepare_student(course: Course, account: Account) -> None:
    _write_owned(account.home / ".jupyter" / "nbgrader_config.py",
                 student_nbgrader_config(course), account)


@dataclass(frozen=True)
class ExchangeLayout:
    """The folders of one course in nbgrader's default exchange."""

    root: Path
    course_id: str

    @property
    def course(self) -> Path:
        return self.root / self.course_id

    @property
    def outbound(self) -> Path:
        return self.course / "outbound"

    @property
    def inbound(self) -> Path:
        return self.course / "inbound"

    @property
    def feedback(self) -> Path:
        return self.course / "feedback"


def prepare_exchange(course: Course, instructor: Account) -> ExchangeLayout:
    """Create (or re-tighten) the exchange with the modes in this module's docstring."""
    layout = ExchangeLayout(root=Path(course.config.hub.exchange_dir), course_id=course.config.course_id)
    layout.root.mkdir(parents=True, exist_ok=True)
    os.chown(layout.root, 0, 0)
    os.chmod(layout.root, EXCHANGE_ROOT_MODE)
    for folder, mode in ((layout.course, OUTBOUND_MODE), (layout.outbound, OUTBOUND_MODE),
                         (layout.inbound, INBOUND_MODE), (layout.feedback, FEEDBACK_DIR_MODE)):
        folder.mkdir(exist_ok=True)
        os.chown(folder, instructor.uid, instructor.gid)
        os.chmod(folder, mode)
    return layout


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def remove_account(name: str) -> None:
    """Delete a user and its home (tests only; ``course hub down`` keeps users)."""
    if lookup_account(name) is not None:
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
