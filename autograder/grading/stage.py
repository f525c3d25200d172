"""The stage: one job's folders on the host, as the sandbox sees them and as the grader does.

Decisions: every job folder the sandbox binds lives under the root-owned, world-traversable
:data:`STAGE_ROOT` (bwrap resolves bind sources as the slot uid, so they cannot live under
the grader's private temporary folders). The scratch copy, ``/tmp`` and ``/dev/shm`` sit on
one tmpfs mounted by root with ``size=disk_mb`` and ``nosuid,nodev`` (bwrap 0.8 has no
``--size``); the export folder has a tmpfs of its own, so a notebook that fills its disk
still leaves room for its answers. Release files the slot uid cannot reach are bound from
root-owned copies; the socket folder is taken back once the kernel bound its sockets.

The paths inside the sandbox (``INSIDE_*``) are here too: the generated ``/etc/passwd``
names the work folder as the student's home. The argv that binds all this is
:mod:`autograder.grading.sandbox`; the slot lock that cleans up after a killed grader is
:mod:`autograder.grading.slots`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from autograder.errors import SandboxUnavailable
from autograder.grading.sandbox_users import SandboxUser

# Paths as the kernel sees them inside the sandbox.
INSIDE_WORK = "/sandbox/work"
INSIDE_EXPORT = "/sandbox/export"
INSIDE_WEIGHTS = "/sandbox/weights"
INSIDE_TMP = "/tmp"


STAGE_ROOT = Path("/run/course-sandbox")
"""Root-owned, world-traversable base of every job's sandbox-visible folders. bwrap
resolves bind sources as the slot uid, so they cannot live under the grader's private
(0700) temporary folders."""


@dataclass(frozen=True)
class JobLayout:
    """Where one job's files live on the host.

    ``stage`` holds what the sandbox sees (its capped tmpfs, the socket folder, a
    generated /etc/passwd, copies of release files the slot uid could not reach);
    ``out`` (under the grader's ``job_dir``) is the grader's own and never mounted.
    """

    job_dir: Path
    stage: Path

    @classmethod
    def for_job(cls, job_dir: Path, *, name: str) -> JobLayout:
        return cls(job_dir=job_dir, stage=STAGE_ROOT / name)

    @property
    def conn(self) -> Path:
        return self.stage / "conn"

    @property
    def scratch(self) -> Path:
        return self.stage / "scratch"

    @property
    def work(self) -> Path:
        return self.scratch / "work"

    @property
    def tmp(self) -> Path:
        return self.scratch / "tmp"

    @property
    def export(self) -> Path:
        return self.scratch / "export"

    @property
    def shm(self) -> Path:
        return self.scratch / "shm"

    @property
    def etc(self) -> Path:
        return self.stage / "etc"

    @property
    def ro(self) -> Path:
        return self.stage / "ro"

    @property
    def out(self) -> Path:
        return self.job_dir / "out"


def prepare_job_dir(
    layout: JobLayout, *, user: SandboxUser | None, disk_mb: int, export_mb: int | None = None
) -> bool:
    """Create the job folders; with a ``user``, mount the capped tmpfs. Returns mounted?

    With ``export_mb``, the export folder gets a tmpfs of its own: a notebook that fills its
    disk (the scratch tmpfs) must still leave room for the grader to collect its answers."""
    for folder in (layout.job_dir, layout.stage):
        if folder.exists():
            release_job_dir(layout)
            shutil.rmtree(folder)
    layout.job_dir.mkdir(parents=True, mode=0o700)
    layout.out.mkdir(mode=0o700)
    STAGE_ROOT.mkdir(parents=True, exist_ok=True, mode=0o711)
    os.chmod(STAGE_ROOT, 0o711)
    layout.stage.mkdir(mode=0o711)  # the slot uid may traverse, never list
    layout.scratch.mkdir(mode=0o700)
    layout.conn.mkdir(mode=0o700)
    layout.ro.mkdir(mode=0o755)
    mounted = False
    if user is not None:
        options = f"size={disk_mb}m,mode=0700,uid={user.uid},gid={user.gid},nosuid,nodev"
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                              str(layout.scratch)], capture_output=True, text=True)
        if run.returncode != 0:
            raise SandboxUnavailable(
                f"cannot mount the job's tmpfs: {run.stderr.strip()}",
                hint="the grader must run as root with CAP_SYS_ADMIN (mount)",
            )
        mounted = True
    for folder in (layout.work, layout.tmp, layout.export, layout.shm):
        folder.mkdir(mode=0o700)
    if user is not None and export_mb is not None:
        options = f"size={export_mb}m,mode=0700,uid={user.uid},gid={user.gid},nosuid,nodev"
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                              str(layout.export)], capture_output=True, text=True)
        if run.returncode != 0:
            raise SandboxUnavailable(f"cannot mount the job's export tmpfs: {run.stderr.strip()}",
                                     hint="the grader must run as root with CAP_SYS_ADMIN (mount)")
    if user is not None:
        for folder in (layout.work, layout.tmp, layout.export, layout.shm, layout.conn):
            os.chown(folder, user.uid, user.gid)
        layout.etc.mkdir(mode=0o755)
        (layout.etc / "passwd").write_text(
            f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
            f"student:x:{user.uid}:{user.gid}:student:{INSIDE_WORK}:/usr/sbin/nologin\n")
        (layout.etc / "group").write_text(f"root:x:0:\nstudent:x:{user.gid}:\n")
        for name in ("passwd", "group"):
            os.chmod(layout.etc / name, 0o644)
    return mounted


def reachable_by_others(path: Path) -> bool:
    """Whether a uid that is neither owner nor group can read ``path`` (bwrap's view)."""
    path = path.resolve()
    for folder in path.parents:
        if not os.stat(folder).st_mode & 0o001:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & 0o004) and (not stat.S_ISDIR(mode) or bool(mode & 0o001))


def stage_readonly(layout: JobLayout, source: Path) -> Path:
    """``source`` itself when the slot uid can reach it, else a root-owned copy in the stage."""
    if reachable_by_others(source) and (not source.is_dir() or all(
            reachable_by_others(p) for p in source.rglob("*"))):
        return source
    target = layout.ro / source.name
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False)
        for p in (target, *target.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    else:
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)
    return target


def release_job_dir(layout: JobLayout) -> None:
    """Unmount the job's tmpfs and delete the stage (after the cgroup was killed)."""
    if os.path.ismount(layout.export):
        if subprocess.run(["umount", str(layout.export)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(layout.export)], capture_output=True)
    if os.path.ismount(layout.scratch):
        if subprocess.run(["umount", str(layout.scratch)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(layout.scratch)], capture_output=True)
    if layout.stage.exists() and not os.path.ismount(layout.scratch):
        shutil.rmtree(layout.stage, ignore_errors=True)


def seal_conn_dir(layout: JobLayout) -> None:
    """After the kernel bound its sockets, take the folder back so it cannot swap them."""
    os.chown(layout.conn, 0, 0)
    os.chmod(layout.conn, 0o700)


# ---------------------------------------------------------------------------------------
# What one job's kernel gets: its folders as it sees them, its files, its read-only binds
# ---------------------------------------------------------------------------------------

RELEASE_FILES = ("course_helpers.py", "settings.json", "data")
"""What the kernel gets from the release folder, beside the notebook."""


def inside_paths(layout: JobLayout, *, sandboxed: bool) -> dict[str, str]:
    """The job's folders as the kernel sees them."""
    if sandboxed:
        return {"work": INSIDE_WORK, "tmp": INSIDE_TMP, "export": INSIDE_EXPORT,
                "data": f"{INSIDE_WORK}/data", "weights": INSIDE_WEIGHTS}
    return {"work": str(layout.work), "tmp": str(layout.tmp), "export": str(layout.export),
            "data": str(layout.work / "data"), "weights": str(layout.job_dir / "weights")}


def stage_files(layout: JobLayout, notebook: Path, release: Path, *,
                user: SandboxUser | None, sandboxed: bool) -> None:
    """The scratch copy of the submission (and, unsandboxed, copies of the release files)."""
    target = layout.work / "submission.ipynb"
    shutil.copyfile(notebook, target)
    if user is not None:
        os.chown(target, user.uid, user.gid)
    if not sandboxed:
        for name in RELEASE_FILES[:-1]:
            if (release / name).is_file():
                shutil.copyfile(release / name, layout.work / name)
        if (release / "data").is_dir():
            os.symlink(release / "data", layout.work / "data")


def readonly_binds(layout: JobLayout, release: Path,
                   weights_file: Path | None) -> list[tuple[Path, str]]:
    """(host path, sandbox path) pairs for the release files and the weights file."""
    binds = []
    for name in RELEASE_FILES:
        if (release / name).exists():
            binds.append((stage_readonly(layout, release / name), f"{INSIDE_WORK}/{name}"))
    if weights_file is not None and weights_file.is_file():
        binds.append((stage_readonly(layout, weights_file),
                      f"{INSIDE_WEIGHTS}/{weights_file.name}"))
    return binds
