"""Grading on a worker that shares no disk with the client: bytes in, results out as data.

A :class:`RemoteTask` carries the submission's bytes and the *identity* of the course
material it must be graded against (sha256 of the answer key, the release notebook, the
rubric, the dataset manifest and the weights). The worker grades it against its own
read-only copy of the course (``COURSE_ROOT`` in the worker's environment), after checking
that every one of those files hashes the same, in a temporary output folder, and returns
the :class:`RemoteOutcome`: the result and every file of the student's output folder
(results.json, feedback.html, grader.log, kept models) as bytes. The client alone writes
the output folder, ``grades.csv`` and the gradebook (:func:`write_outcome`).

The client holds none of the grader's secrets (the hub's grading service mounts only what
students see: the release, the public data and the weights). So the identity of a batch is
agreed by the workers (:func:`agreed_identity`): before the first task every worker hashes
its own copy (:func:`worker_identity`); they must all agree, and agree with the client on
the public files; a batch over copies that differ is refused, naming the files and the
workers. A worker that joins later and differs refuses each task it is sent.

Nothing here assumes a shared filesystem; a worker whose copy differs refuses the task
with :class:`WorkerDataError`, naming the files, and grades nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from autograder.errors import GradingError
from autograder.facts import GradeResult
from autograder.grading.pipeline import GradeJob, GradingContext

MAX_OUTCOME_BYTES = 512 * 1024 * 1024
"""What one submission's output folder may hold when it comes back (kept models included)."""


class WorkerDataError(GradingError):
    """A worker's copy of the course material differs from the other workers' or, for what
    students see too, from the client's."""


@dataclass(frozen=True)
class RemoteTask:
    assignment_id: str
    profile: str
    weights_mode: str
    student: str
    notebook_name: str
    notebook: bytes
    identity: dict[str, str]
    """File (relative to the course root, or ``weights``) → sha256, as the client has them."""
    course_root: str
    """The client's course root: used by a worker without ``COURSE_ROOT`` (a local cluster)."""


@dataclass(frozen=True)
class RemoteOutcome:
    result: GradeResult
    files: dict[str, bytes]
    """The student's output folder, by path relative to it."""
    worker: str


_HASHES: dict[tuple[str, int, int], str] = {}
_PROTECTED: set[Path] = set()
"""Course copies whose secrets this worker process has closed (and opened to the checker)."""


def _sha256(path: Path) -> str:
    """A file's sha256, cached per (path, size, mtime) for the life of the process (the
    weights file is ~100 MB and every task checks it)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def material(ctx: GradingContext) -> dict[str, Path]:
    """What a grade depends on besides the submission, by a name both sides share."""
    course, a = ctx.course, ctx.assignment
    files = {"answer key": ctx.key_file,
             f"release/{a.assignment_id}/{a.notebook}": course.release_dir(a.assignment_id) / a.notebook}
    rubric = course.rubric_dir(a.assignment_id)
    for path in sorted(rubric.rglob("*.py")):
        files[f"rubric/{path.relative_to(rubric)}"] = path
    if a.uses_images:
        files["datasets/manifest.json"] = course.dataset_manifest
    if ctx.weights_file is not None:
        files["weights"] = ctx.weights_file
    return files


def is_secret(name: str) -> bool:
    """A file of :func:`material` only graders hold (students never see it)."""
    return name == "answer key" or name.startswith("rubric/")


def identity(ctx: GradingContext, *, public_only: bool = False) -> dict[str, str]:
    """sha256 of each file of :func:`material` (only those students see too, with
    ``public_only``); a missing file is named, not hashed."""
    out = {}
    for name, path in material(ctx).items():
        if public_only and is_secret(name):
            continue
        out[name] = _sha256(path) if path.is_file() else "missing"
    return out


def worker_identity(assignment_id: str, profile: str, weights_mode: str, course_root: str,
                    ) -> dict[str, str]:
    """On every worker (``Client.run``, before a batch): the identity of its own copy for the
    batch's setting. A copy that cannot grade it (a stale answer key, a missing release)
    raises the course's own error, which names the fix."""
    root = Path(os.environ.get("COURSE_ROOT") or course_root)
    return identity(_own_context(root, assignment_id, profile, weights_mode, root / "unused"))


def _own_context(root: Path, assignment_id: str, profile: str, weights_mode: str,
                 out_dir: Path) -> GradingContext:
    """This worker's context for the batch's setting, from its own copy at ``root``."""
    from autograder.course.config import load_course
    from autograder.grading.pipeline import make_context

    course = load_course(root)
    mode = weights_mode if course.config.assignment(assignment_id).uses_backbone else None
    return make_context(course, assignment_id, profile_name=profile, out_dir=out_dir,
                        weights_mode=mode)


def agreed_identity(ctx: GradingContext, answers: dict[str, Any]) -> dict[str, str]:
    """The identity every worker's copy has (``answers``: worker → its :func:`worker_identity`
    or the error it raised), checked against the client's own public files; raises
    :class:`WorkerDataError` naming each worker that cannot grade, each file on which the
    workers' copies differ and each public file that differs from the client's."""
    from autograder.grading.score import printable

    def who(names: list[str]) -> str:
        return ", ".join(printable(n) for n in sorted(names))

    failed = {w: a for w, a in answers.items() if isinstance(a, BaseException)}
    copies = {w: a for w, a in answers.items() if not isinstance(a, BaseException)}
    problems = [f"worker {who([w])} cannot grade it: {getattr(exc, 'message', None) or exc}"
                for w, exc in sorted(failed.items())]
    agreed: dict[str, str] = {}
    differ: set[str] = set()
    for name in sorted({name for ident in copies.values() for name in ident}):
        holders: dict[str, list[str]] = {}
        for w, ident in copies.items():
            holders.setdefault(ident.get(name, "missing"), []).append(w)
        if len(holders) > 1:
            groups = sorted(holders.values(), key=lambda ws: (-len(ws), sorted(ws)))
            problems.append(f"{name} differs between the workers' copies ("
                            + "; ".join(f"one copy on {who(ws)}" for ws in groups) + ")")
            differ.add(name)
        else:
            agreed[name] = next(iter(holders))
    if copies:  # what students were given is what the workers grade against
        for name, digest in identity(ctx, public_only=True).items():
            if name not in differ and agreed.get(name) != digest:
                problems.append(f"{name} differs between the workers and this client")
    if problems:
        raise WorkerDataError(
            f"the grading workers cannot grade {ctx.assignment.assignment_id} "
            f"({ctx.setting()}) alike: " + "; ".join(problems),
            hint="copy the course's release, rubric, answer keys, datasets and weights to every "
                 "worker again (the release, data and weights this client has), then restart them")
    return agreed


def make_task(ctx: GradingContext, job: GradeJob, notebook: bytes, ident: dict[str, str]) -> RemoteTask:
    return RemoteTask(assignment_id=ctx.assignment.assignment_id, profile=ctx.profile_name,
                      weights_mode=ctx.weights_mode, student=job.student,
                      notebook_name=ctx.assignment.notebook, notebook=notebook, identity=ident,
                      course_root=str(ctx.course.root))


def worker_context(task: RemoteTask, out_dir: Path) -> GradingContext:
    """The worker's own context for ``task``, from its own course copy, checked against the
    identity the batch's workers agreed on; raises :class:`WorkerDataError` naming every file
    that differs."""
    from autograder.course.permissions import protect_course_files
    from autograder.grading.pipeline import with_embeddings

    root = Path(os.environ.get("COURSE_ROOT") or task.course_root)
    ctx = _own_context(root, task.assignment_id, task.profile, task.weights_mode, out_dir)
    if root not in _PROTECTED:  # as run_batch does on the client: the checker (nobody, in the
        protect_course_files(ctx.course)  # course-grader group) must read the key and the rubric
        _PROTECTED.add(root)
    ours = identity(ctx)
    differ = sorted(name for name in set(ours) | set(task.identity)
                    if ours.get(name) != task.identity.get(name))
    if differ:
        raise WorkerDataError(
            f"the worker's course copy at {root} differs from the batch's (as the workers agreed "
            f"on it before the batch) in: {', '.join(differ)}",
            hint="copy the course's release, rubric, answer keys, datasets and weights to the worker "
                 "again (the same files the other workers hold), then restart it")
    return with_embeddings(ctx)


def grade_task(task: RemoteTask, *, slot: int) -> RemoteOutcome:
    """On the worker: grade ``task`` in a temporary output folder; return it as data."""
    import socket

    from autograder.grading.pipeline import grade_submission

    scratch = Path(tempfile.mkdtemp(prefix="course-remote-"))
    try:
        ctx = worker_context(task, scratch / "out")
        notebook = scratch / "in" / task.notebook_name
        notebook.parent.mkdir(mode=0o700)
        notebook.write_bytes(task.notebook)
        result = grade_submission(ctx, GradeJob(student=task.student, notebook=notebook), slot=slot)
        files = pack(ctx.out_dir / task.student)
        return RemoteOutcome(result=result, files=files, worker=socket.gethostname())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def pack(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder``, by relative path, at most :data:`MAX_OUTCOME_BYTES`."""
    files, total = {}, 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            total += len(data)
            if total > MAX_OUTCOME_BYTES:
                raise GradingError(f"the output of {folder.name} is over {MAX_OUTCOME_BYTES >> 20} MiB",
                                   hint="set grading.keep_models = False, or grade on one machine")
            files[path.relative_to(folder).as_posix()] = data
    return files


def write_outcome(ctx: GradingContext, outcome: RemoteOutcome) -> GradeResult:
    """On the client: the worker's files into ``<out>/<student>/`` (results.json last, each
    file written whole and renamed), then the result for the gradebook."""
    student_dir = ctx.out_dir / outcome.result.student
    student_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(outcome.files, key=lambda n: n == "results.json")  # the resume marker last
    for name in names:
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise GradingError(f"a worker returned the path {name!r}", hint="a grader bug")
        target = student_dir.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(outcome.files[name])
        os.replace(tmp, target)
    return outcome.result
