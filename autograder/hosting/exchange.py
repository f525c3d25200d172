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
  closed to others (0750 / files 0640, group = the instructor's through setgid) and
  graded from a private snapshot, so later edits cannot change a grade.
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


def verify_owner(submission: Submission, notebook_name: str) -> Path:
    """The submitted notebook, after checking that the student named in the folder owns it all."""
    try:
        uid = pwd.getpwnam(submission.student).pw_uid
    except KeyError:
        raise SubmissionRejected(f"{submission.student!r} is not a user of this course") from None
    folder_stat = os.lstat(submission.folder)
    if folder_stat.st_uid != uid:
        owner = _user_name(folder_stat.st_uid)
        raise SubmissionRejected(
            f"submitted by {owner}, not by {submission.student}: a submission must come from its own student"
        )
    notebook = submission.folder / notebook_name
    if not notebook.exists() and not notebook.is_symlink():
        raise SubmissionRejected(f"the submission has no {notebook_name}")
    for path in submission.folder.rglob("*"):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise SubmissionRejected(f"{path.name} is a symbolic link; submit plain files")
        if st.st_uid != uid:
            raise SubmissionRejected(
                f"{path.name} belongs to {_user_name(st.st_uid)}, not to {submission.student}"
            )
    return notebook


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def close_submission(submission: Submission) -> None:
    """Take write access away from everyone but the owner, and read access from other students."""
    for folder, _, files in os.walk(submission.folder):
        for name in files:
            os.chmod(os.path.join(folder, name), SUBMISSION_FILE_MODE)
        os.chmod(folder, SUBMISSION_DIR_MODE | (os.stat(folder).st_mode & stat.S_ISGID))


def snapshot(submission: Submission, notebook: Path, dest: Path) -> tuple[Path, str]:
    """Copy the notebook and the secret into ``dest`` (private); return the copy and the secret."""
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    copy = dest / notebook.name
    shutil.copyfile(notebook, copy)
    secret_file = submission.folder / "submission_secret.txt"
    secret = secret_file.read_text() if secret_file.is_file() else ""
    return copy, secret


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
