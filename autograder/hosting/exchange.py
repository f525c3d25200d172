"""Reading submissions from, and publishing feedback to, nbgrader's default exchange.

The layout is nbgrader 0.9's (``nbgrader/exchange/default``):

- a submission is ``inbound/<student>+<assignment>+<timestamp>+<random>/`` holding the
  notebooks, ``timestamp.txt`` and ``submission_secret.txt`` (128 hex characters);
- feedback for notebook ``<id>`` of that submission is ``feedback/<md5(secret + id)>.html``,
  which ``nbgrader fetch_feedback`` finds from the copy of the secret in the student's cache.

Closing nbgrader's known exchange weaknesses:

- #1097 (submitting as someone else, ``--student``): a submission is graded only when its
  folder and every notebook in it belong to the uid of the student its name claims.
- #978 (world-readable inbound): inbound is 2733; after pick-up the submission folder is
  closed to others (0750 / files 0640, group = the instructor's, so ``nbgrader collect`` works) and
  graded from a private snapshot, so later edits cannot change a grade. All of it goes
  through ``O_NOFOLLOW`` descriptors: a student who swaps a file for a symbolic link
  cannot make the root service read or chmod anything outside their submission.
- #1202 (reading others' feedback): the feedback folder is 0711 (no listing), names are
  unguessable, and each feedback file belongs to its student with mode 0440 (group =
  the instructor's), so even a leaked name does not let another student read it.

Pure path and permission logic; no grading and no HTTP here.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

SUBMISSION_DIR_MODE = 0o750
SUBMISSION_FILE_MODE = 0o640
FEEDBACK_FILE_MODE = 0o440


class SubmissionRejected(Exception):
    """A submission that must not be graded; ``reason`` is shown to the student and instructor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Submission:
    """One folder in ``inbound/``."""

    folder: Path
    student: str
    assignment_id: str
    timestamp: str

    @property
    def job_id(self) -> str:
        return self.folder.name


def parse_submission(folder: Path) -> Submission | None:
    """The submission named by ``folder``, or ``None`` for anything else in inbound."""
    parts = folder.name.split("+")
    if len(parts) not in (3, 4) or not all(parts[:3]):
        return None
    return Submission(folder=folder, student=parts[0], assignment_id=parts[1], timestamp=parts[2])


def list_submissions(inbound: Path) -> list[Submission]:
    """Every submission folder in ``inbound`` (the service runs as root, so it may list)."""
    if not inbound.is_dir():
        return []
    found = []
    for entry in sorted(inbound.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            submission = parse_submission(entry)
            if submission is not None:
                found.append(submission)
    return found


SECRET_CHARS = 128  # nbgrader writes secrets.token_hex(64)
SETTLE_S = 300.0


def is_complete(submission: Submission, *, now: float | None = None) -> bool:
    """Has nbgrader finished writing this submission?

    ``nbgrader submit`` copies the files, writes timestamp.txt and submission_secret.txt, and
    last opens the folder to 0777. Picking a folder up earlier raced it: the secret was still
    empty and closing the folder broke the student's own submit. A folder that never
    completes is picked up after ``SETTLE_S`` anyway, and rejected with its reason.
    """
    try:
        st = submission.folder.lstat()
        secret = (submission.folder / "submission_secret.txt").lstat()
    except OSError:
        secret = None
    if secret is not None and stat.S_IMODE(st.st_mode) == 0o777 and secret.st_size >= SECRET_CHARS:
        return True
    try:
        age = (now or time.time()) - submission.folder.lstat().st_mtime
    except OSError:
        return False
    return age > SETTLE_S


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _open_nofollow(name: str, dir_fd: int, flags: int = 0) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | flags, dir_fd=dir_fd)
    except OSError as exc:  # ELOOP: a symbolic link
        raise SubmissionRejected(f"{name} is not a plain file or folder; submit plain files") from exc


def _check_owner(fd: int, name: str, uid: int, student: str) -> os.stat_result:
    st = os.fstat(fd)
    if st.st_uid != uid:
        raise SubmissionRejected(f"{name} belongs to {_user_name(st.st_uid)}, not to {student}: "
                                 "a submission must come from its own student")
    return st


def pick_up(submission: Submission, notebook_name: str, dest: Path) -> tuple[Path, str]:
    """Check, close and snapshot a submission; return the private copy of the notebook and the secret.

    The service runs as root and the student owns the folder, so every step works on file
    descriptors opened with ``O_NOFOLLOW`` (never on paths a student could swap for a symbolic
    link between a check and a use): the folder and each file must belong to the student the
    folder's name claims (nbgrader#1097); each is then closed to others and the notebook and
    the secret are read from the very descriptors that were checked.
    """
    try:
        uid = pwd.getpwnam(submission.student).pw_uid
    except KeyError:
        raise SubmissionRejected(f"{submission.student!r} is not a user of this course") from None
    inbound_fd = os.open(submission.folder.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        staff_gid = os.fstat(inbound_fd).st_gid  # the instructor's group: `nbgrader collect` reads through it
        top = _open_nofollow(submission.folder.name, inbound_fd, os.O_DIRECTORY)
    finally:
        os.close(inbound_fd)
    try:
        _check_owner(top, "the submission folder", uid, submission.student)
        os.fchmod(top, SUBMISSION_DIR_MODE)  # others lose write access first
        os.fchown(top, -1, staff_gid)
        contents = _close_tree(top, uid, submission.student, staff_gid=staff_gid)
    finally:
        os.close(top)
    if notebook_name not in contents:
        raise SubmissionRejected(f"the submission has no {notebook_name}")
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    copy = dest / notebook_name
    copy.write_bytes(contents[notebook_name])
    secret = contents.get("submission_secret.txt", b"").decode("ascii", errors="replace").strip()
    (dest.parent / "submission_secret.txt").write_text(secret)
    return copy, secret


_KEEP = ("submission_secret.txt", "timestamp.txt")


def _close_tree(dir_fd: int, uid: int, student: str, *, staff_gid: int, depth: int = 0) -> dict[str, bytes]:
    """Owner-check and close every entry below ``dir_fd``; return the top-level notebooks and secret."""
    kept: dict[str, bytes] = {}
    for name in os.listdir(dir_fd):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not (is_dir or stat.S_ISREG(st.st_mode)):
            raise SubmissionRejected(f"{name} is not a plain file or folder; submit plain files")
        fd = _open_nofollow(name, dir_fd, os.O_DIRECTORY if is_dir else 0)
        try:
            _check_owner(fd, name, uid, student)
            os.fchown(fd, -1, staff_gid)
            if is_dir:
                os.fchmod(fd, SUBMISSION_DIR_MODE)
                if depth < 8:
                    _close_tree(fd, uid, student, staff_gid=staff_gid, depth=depth + 1)
            else:
                os.fchmod(fd, SUBMISSION_FILE_MODE)
                if depth == 0 and (name.endswith(".ipynb") or name in _KEEP):
                    with os.fdopen(os.dup(fd), "rb") as fh:
                        kept[name] = fh.read()
        finally:
            os.close(fd)
    return kept


def feedback_hash(secret: str, notebook_id: str) -> str:
    """nbgrader's name for a feedback file (``nbgrader.utils.notebook_hash``, secret method)."""
    digest = hashlib.md5()
    digest.update(secret.encode("utf-8"))
    digest.update(notebook_id.encode("utf-8"))
    return digest.hexdigest()


def publish_feedback(html: Path, *, feedback_dir: Path, secret: str, notebook_id: str,
                     student: str, group_gid: int) -> Path:
    """Put ``html`` where ``nbgrader fetch_feedback`` looks for it, readable only by its student."""
    if not secret:
        raise SubmissionRejected("the submission has no submission_secret.txt (nbgrader < 0.9?)")
    target = feedback_dir / f"{feedback_hash(secret, notebook_id)}.html"
    partial = feedback_dir / f".{target.name}.partial"
    shutil.copyfile(html, partial)
    os.chown(partial, pwd.getpwnam(student).pw_uid, group_gid)
    os.chmod(partial, FEEDBACK_FILE_MODE)
    os.replace(partial, target)  # atomic: fetch_feedback never sees half a file
    return target
