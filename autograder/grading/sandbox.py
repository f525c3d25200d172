"""The sandbox one student kernel runs in: a uid, a bubblewrap argv, a cgroup, rlimits.

Decision: each grading slot owns an unprivileged system user (``<prefix><slot>``).
The kernel command is wrapped, outermost first, in

1. ``sh -c 'echo $$ > cgroup.procs; exec "$@"'`` (as root): joins the job's cgroup
   before anything else runs, so every later process and thread is counted and killable;
2. ``prlimit --fsize --core=0``: largest file, no core dumps (RLIMIT_AS is not used: it
   aborts ``import tensorflow``, whose threads reserve gigabytes of address space);
3. ``setpriv --reuid --regid --clear-groups --inh-caps=-all --no-new-privs``: drop root;
4. ``bwrap --unshare-all --cap-drop ALL --die-with-parent --new-session``: new user,
   mount, pid, net, ipc and uts namespaces; read-only binds of ``/usr`` and the venv, a
   generated ``/etc/passwd``, and a per-job tmpfs (mounted by root with ``size=disk_mb``,
   since bwrap 0.8 has no ``--size``) for the scratch copy, ``/tmp`` and the export folder.
   The root of the sandbox and ``/dev`` are remounted read-only, so the only writable
   places are on that capped tmpfs.

Alternatives rejected: bwrap as root (it keeps every capability, a student could remount
a read-only bind read-write); Docker/podman (not on the grading hosts, and a daemon with
root); RLIMIT_NPROC (counts per uid across the machine, ignored for root); RLIMIT_AS
(breaks TensorFlow); seccomp network filters (the empty network namespace already
isolates, and needs no extra package).

Cgroups (the mechanics: :mod:`autograder.cgroups`): v1 (memory + memsw, pids, freezer for
a race-free kill) and v2 (memory.max, pids.max, ``cgroup.kill``), strict: a limit that
cannot be set refuses the job. In v1 the job group nests under the grader's own group, so
limits set on the grader's container still apply; in v2 it lives under
``/sys/fs/cgroup/course-grading`` (a v2 group holding processes cannot delegate
controllers to its children).

This module never starts a kernel (that is :mod:`autograder.grading.execute`) and never
reads what a kernel wrote (that is :mod:`autograder.grading.export`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder import cgroups, reach
from autograder.cgroups import Cgroup, CgroupEvents  # noqa: F401  (execute.py names sandbox.CgroupEvents)
from autograder.errors import SandboxUnavailable
from autograder.paths import venv_dir

BWRAP = "/usr/bin/bwrap"
GROUP_PARENT = "course-grading"

# Paths as the kernel sees them inside the sandbox.
INSIDE_WORK = "/sandbox/work"
INSIDE_EXPORT = "/sandbox/export"
INSIDE_WEIGHTS = "/sandbox/weights"
INSIDE_TMP = "/tmp"


# ---------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account one grading slot runs student code as."""

    name: str
    uid: int
    gid: int


def slot_user_name(prefix: str, slot: int) -> str:
    return f"{prefix}{slot}"


def find_sandbox_user(prefix: str, slot: int) -> SandboxUser:
    """The slot's user, or :class:`SandboxUnavailable` naming the command that creates it."""
    name = slot_user_name(prefix, slot)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxUnavailable(
            f"sandbox user {name} does not exist",
            hint="run `course sandbox setup` as root (it creates one user per grading slot)",
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise SandboxUnavailable(
            f"sandbox user {name} has uid or gid 0",
            hint=f"delete {name} and run `course sandbox setup` again",
        )
    return SandboxUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def ensure_sandbox_users(prefix: str, count: int) -> list[SandboxUser]:
    """Create system users ``<prefix>0..count-1`` (no home, shell nologin) where missing."""
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "creating sandbox users needs root", hint="run `sudo course sandbox setup`"
        )
    users = []
    for slot in range(count):
        name = slot_user_name(prefix, slot)
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", "--user-group", name],
                check=True, capture_output=True, text=True,
            )
        users.append(find_sandbox_user(prefix, slot))
    return users


# ---------------------------------------------------------------------------------------
# The job's cgroup (the mechanics, v1 or v2: autograder.cgroups)
# ---------------------------------------------------------------------------------------


def cgroup_version() -> int:
    """The hierarchy jobs get their cgroup in (1 or 2), 0 without memory and pids controllers."""
    version = cgroups.detect_version()
    return version if {"memory", "pids"} <= cgroups.controllers() else 0


def create_cgroup(name: str, *, memory_mb: int, max_processes: int) -> Cgroup:
    """A fresh job cgroup with the memory and process limits set."""
    group = None
    if cgroup_version():
        limits = cgroups.Limits(memory_bytes=memory_mb * 1024 * 1024, pids_max=max_processes,
                                v1_swap=True)  # count swap too, or a bomb just pages out
        try:
            group = cgroups.create(name, limits, parent=GROUP_PARENT, freezer=True, nested=True)
        except OSError as exc:
            raise SandboxUnavailable(
                f"cannot create cgroup {name}: {exc}",
                hint="the grader must run as root on a host with writable memory and pids cgroups",
            ) from exc
    if group is None:
        raise SandboxUnavailable(
            "no usable cgroup hierarchy under /sys/fs/cgroup",
            hint="mount cgroup v2, or the v1 memory, pids and freezer controllers",
        )
    return group


# ---------------------------------------------------------------------------------------
# The job folder and its capped tmpfs
# ---------------------------------------------------------------------------------------


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
# The argv
# ---------------------------------------------------------------------------------------


def build_sandbox_argv(
    kernel_argv: Sequence[str],
    *,
    user: SandboxUser,
    layout: JobLayout,
    ro_binds: Sequence[tuple[Path, str]],
    env: Mapping[str, str],
    cgroup: Cgroup | None,
    file_size_mb: int,
) -> list[str]:
    """The full command that starts ``kernel_argv`` as ``user`` inside bubblewrap.

    ``ro_binds`` are (host path, path inside) pairs mounted read-only, e.g. the release's
    ``course_helpers.py`` into the work folder; nothing else of the host is visible
    except ``/usr``, the venv and the job's own scratch and socket folders.
    """
    argv: list[str] = []
    if cgroup is not None:
        argv += cgroup.join_prefix()
    fsize = file_size_mb * 1024 * 1024
    argv += ["prlimit", f"--fsize={fsize}", "--core=0", "--"]
    venv = venv_dir()
    # bwrap resolves its bind sources as the slot uid: a checkout in a folder other users
    # cannot traverse is made reachable first, in a private mount namespace (reach.py).
    needed = [*([venv] if venv is not None else []), *(host for host, _ in ro_binds)]
    argv += reach.reach_prefix(needed)
    argv += ["setpriv", "--reuid", str(user.uid), "--regid", str(user.gid),
             "--clear-groups", "--inh-caps=-all", "--no-new-privs"]
    argv += [BWRAP, "--unshare-all", "--die-with-parent", "--new-session",
             "--cap-drop", "ALL", "--hostname", "sandbox",
             "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{top}"]
    for etc_file in ("/etc/ld.so.cache", "/etc/localtime"):
        if Path(etc_file).exists():
            argv += ["--ro-bind", etc_file, etc_file]
    argv += ["--ro-bind", str(layout.etc / "passwd"), "/etc/passwd",
             "--ro-bind", str(layout.etc / "group"), "/etc/group"]
    argv += ["--proc", "/proc", "--dev", "/dev",
             "--bind", str(layout.shm), "/dev/shm",
             "--bind", str(layout.work), INSIDE_WORK,
             "--bind", str(layout.export), INSIDE_EXPORT,
             "--bind", str(layout.tmp), INSIDE_TMP,
             # Same path inside and out: the connection file names its sockets by path.
             "--bind", str(layout.conn), str(layout.conn)]
    if venv is not None:
        # After the scratch /tmp: bwrap mounts in order, and a checkout under /tmp (as CI
        # may clone) would otherwise have its venv hidden by the sandbox's own /tmp.
        argv += ["--ro-bind", str(venv), str(venv)]
    for host, inside in ro_binds:
        argv += ["--ro-bind", str(host), inside]
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", INSIDE_WORK,
             "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--", *kernel_argv]
    return argv


def kernel_environment(
    *, work_dir: str, tmp_dir: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The whole environment of a kernel: nothing inherited from the grader."""
    venv = venv_dir()
    path = f"{venv}/bin:/usr/local/bin:/usr/bin:/bin" if venv else "/usr/local/bin:/usr/bin:/bin"
    env = {
        "PATH": path,
        "HOME": work_dir,
        "TMPDIR": tmp_dir,
        "LANG": "C.UTF-8",
        "IPYTHONDIR": f"{tmp_dir}/ipython",
        "MPLCONFIGDIR": f"{tmp_dir}/matplotlib",
        "KERAS_HOME": f"{tmp_dir}/keras",
        "JUPYTER_RUNTIME_DIR": f"{tmp_dir}/jupyter",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------
# Probing
# ---------------------------------------------------------------------------------------


def probe_sandbox(*, prefix: str, slots: int = 1) -> list[str]:
    """Each missing part, as ``part: what to do``; an empty list means sandboxing works."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("root: the grader must run as root to switch to sandbox uids, "
                       "mount the job tmpfs and write cgroups")
    for tool, package in ((BWRAP, "bubblewrap"), ("setpriv", "util-linux"),
                          ("prlimit", "util-linux"), ("mount", "mount")):
        if shutil.which(tool) is None:
            missing.append(f"{tool}: install the Debian package {package}")
    users: list[SandboxUser] = []
    for slot in range(slots):
        try:
            users.append(find_sandbox_user(prefix, slot))
        except SandboxUnavailable as exc:
            missing.append(f"unprivileged uid: {exc.message} — {exc.hint}")
    version = cgroup_version()
    if version == 0:
        missing.append("cgroups: no memory/pids hierarchy under /sys/fs/cgroup")
    elif os.geteuid() == 0:
        try:
            # Unique per call: jobs of one batch probe at the same time from several threads.
            group = create_cgroup(f"probe-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                                  memory_mb=64, max_processes=8)
            group.remove()
        except SandboxUnavailable as exc:
            missing.append(f"cgroup memory/pids controllers writable: {exc.message}")
        if version == 1 and "freezer" not in cgroups.controllers():
            missing.append("cgroup v1 freezer controller: mount it (used to kill a job)")
    if not missing and users:
        missing += _probe_bwrap(users[0])
    return missing


def _probe_bwrap(user: SandboxUser) -> list[str]:
    """Start ``true`` in the real sandbox shape as the slot uid (user namespaces et al.)."""
    cmd = ["setpriv", "--reuid", str(user.uid), "--regid", str(user.gid), "--clear-groups",
           "--inh-caps=-all", "--no-new-privs", BWRAP, "--unshare-all", "--die-with-parent",
           "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
           "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
           "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/", "--", "/usr/bin/true"]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"bubblewrap as {user.name}: {exc}"]
    if run.returncode != 0:
        return [f"bubblewrap as {user.name}: {run.stderr.strip()[:200]} — "
                "enable unprivileged user namespaces (user.max_user_namespaces > 0)"]
    return []


def require_sandbox(*, prefix: str, slots: int = 1) -> None:
    """Raise :class:`SandboxUnavailable` naming every missing part."""
    missing = probe_sandbox(prefix=prefix, slots=slots)
    if missing:
        refuse_incomplete(missing)


def refuse_incomplete(missing: list[str]) -> None:
    """Raise :class:`SandboxUnavailable` for these missing parts (from one probe)."""
    raise SandboxUnavailable(
        "the grading sandbox is incomplete: " + "; ".join(missing),
        hint="run `course sandbox setup` as root, or set grading.allow_unsandboxed=True "
             "on a machine that never grades real students",
    )


def release_leftovers(slot: int) -> list[Path]:
    """Unmount and delete job folders of slot ``slot`` that a grader killed with -9 left
    behind (their tmpfs stays mounted otherwise). Only the holder of the slot's lock may
    call this: no other job of that slot can be running."""
    left = sorted(STAGE_ROOT.glob(f"{slot}-*"))
    for stage in left:
        release_job_dir(JobLayout(job_dir=stage / "unused", stage=stage))
    return left


@contextlib.contextmanager
def slot_lock(slot: int) -> Iterator[None]:
    """Hold slot ``slot`` for this job, across every grader process on the machine.

    Two graders (say the hub's service and an instructor's ``course grade``) must never
    run two submissions under one slot uid at once; the second waits for the first.
    """
    STAGE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(STAGE_ROOT / f"slot-{slot}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        release_leftovers(slot)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def free_slot(preferred: int, *, count: int) -> Iterator[int]:
    """Hold a free slot among ``0..count-1`` (``preferred`` first) and yield its number; wait
    for ``preferred`` only when every slot is held. Two graders on one machine (the hub's
    service and an instructor's ``course grade``, say) then never queue behind each other
    while a slot is free."""
    STAGE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    order = [preferred, *(s for s in range(count) if s != preferred)]
    for slot in order:
        handle = open(STAGE_ROOT / f"slot-{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            release_leftovers(slot)
            yield slot
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    with slot_lock(preferred):
        yield preferred
