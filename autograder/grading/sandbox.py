"""The sandbox one student kernel runs in: a uid, a bubblewrap argv, a cgroup, rlimits.

Decision: each grading slot owns an unprivileged system user (``<prefix><slot>``,
:mod:`autograder.grading.sandbox_users`; slots are held with :mod:`autograder.grading.slots`),
and each job gets its own folders and capped tmpfs (:mod:`autograder.grading.stage`).
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

import os
import shutil
import signal
import stat
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from autograder import cgroups, reach
from autograder.cgroups import Cgroup
from autograder.errors import SandboxUnavailable
from autograder.grading.sandbox_users import SandboxUser, find_sandbox_user
from autograder.grading.stage import INSIDE_EXPORT, INSIDE_TMP, INSIDE_WORK, JobLayout
from autograder.paths import venv_dir

BWRAP = "/usr/bin/bwrap"
GROUP_PARENT = "course-grading"


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
    devices: Sequence[tuple[Path, str]] = (),
) -> list[str]:
    """The full command that starts ``kernel_argv`` as ``user`` inside bubblewrap.

    ``ro_binds`` are (host path, path inside) pairs mounted read-only, e.g. the release's
    ``course_helpers.py`` into the work folder; nothing else of the host is visible
    except ``/usr``, the venv and the job's own scratch and socket folders. ``devices``
    (host node, path inside) are device nodes to open, the GPU's (:func:`gpu_devices`) for a
    course that grades on one; the sandbox's ``/dev`` has only the basic nodes otherwise.
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
             *_system_binds()]
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
    for host, inside in devices:
        argv += ["--dev-bind", str(host), inside]
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", INSIDE_WORK,
             "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--", *kernel_argv]
    return argv


GPU_DEVICE_DIR = Path("/dev")
"""Where the host's NVIDIA driver puts its device nodes."""


def gpu_devices(dev: Path | None = None) -> list[tuple[Path, str]]:
    """The NVIDIA device nodes a CUDA program opens (``nvidia0``..., ``nvidiactl``,
    ``nvidia-uvm``, ``nvidia-uvm-tools``, ``nvidia-modeset``, ``nvidia-caps/*``) as (host node,
    path inside the sandbox) pairs; character devices only, links not followed.

    Raises :class:`SandboxUnavailable` when there is none: the course asked to grade on a GPU,
    and a kernel without one would train on the CPU, slower than its limits were set for."""
    dev = dev or GPU_DEVICE_DIR
    found: list[tuple[Path, str]] = []
    for node in [*sorted(dev.glob("nvidia*")), *sorted((dev / "nvidia-caps").glob("*"))]:
        try:
            if stat.S_ISCHR(node.lstat().st_mode):
                found.append((node, f"/dev/{node.relative_to(dev)}"))
        except OSError:
            continue
    if not found:
        raise SandboxUnavailable(
            f"grading on a GPU was asked for, but {dev} has no NVIDIA device nodes",
            hint="grade on a machine where nvidia-smi works, or set gpu=False for the assignment "
                 "(assignments[...].gpu) or the course (grading.gpu) in course_config.py")
    return found


def gpu_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The grader's GPU settings that a GPU assignment's kernel needs too.

    ``LD_LIBRARY_PATH``: hosts that mount the driver's libraries in a folder of their own
    (GKE's ``/usr/local/nvidia/lib64``) find ``libcuda.so.1`` only through it; only its
    absolute folders under ``/usr`` that exist are kept, the only host tree the sandbox shows
    (besides the venv). ``CUDA_VISIBLE_DEVICES``: a worker given one card of several. Neither
    widens what the kernel can open: that is the device nodes alone (:func:`gpu_devices`)."""
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    folders = [os.path.normpath(f) for f in environ.get("LD_LIBRARY_PATH", "").split(":")
               if f.startswith("/")]
    folders = [f for f in folders if Path(f).is_relative_to("/usr") and Path(f).is_dir()]
    if folders:
        env["LD_LIBRARY_PATH"] = ":".join(dict.fromkeys(folders))
    if environ.get("CUDA_VISIBLE_DEVICES"):
        env["CUDA_VISIBLE_DEVICES"] = environ["CUDA_VISIBLE_DEVICES"]
    return env


def _system_binds() -> list[str]:
    """bwrap arguments for the host's system files: ``/usr``, the top-level ``/bin``,
    ``/lib``... (a symlink where the host has one), ``ld.so.cache``, ``localtime``."""
    argv = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{top}"]
    for etc_file in ("/etc/ld.so.cache", "/etc/localtime"):
        if Path(etc_file).exists():
            argv += ["--ro-bind", etc_file, etc_file]
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


def kill_leftovers(uid: int, *, passes: int = 20) -> list[int]:
    """SIGKILL every process of a job cgroup that runs as ``uid``, a slot's sandbox user;
    returns their pids.

    Call only while holding that uid's slot: no job of the slot is running then, so any such
    process is a sandbox that a grader killed with -9 left behind. bwrap's --die-with-parent
    does not cover a grader killed while the kernel was still starting (before bwrap set it
    up): one was found still running, its student's code beside the next student's kernel
    under the same uid, with no time limit. Every process of a job joins the job's cgroup
    (as root, before it drops to the uid), so a process of the uid outside the job cgroups is
    no job's: the sandbox probes, which any grader runs as slot 0's uid without holding the
    slot, and which killing them failed. Repeated until a pass finds none, so a process
    forking meanwhile is caught too (its old job's cgroup caps how many it can make)."""
    killed: list[int] = []
    for _ in range(passes):
        found = _pids_of(uid)
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def _pids_of(uid: int) -> list[int]:
    """Processes of a job cgroup (under :data:`GROUP_PARENT`) whose real or effective uid is
    ``uid``, from /proc, so also those in other pid namespaces."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                uids = next((line.split()[1:3] for line in status if line.startswith("Uid:")), [])
            if str(uid) not in uids:
                continue
            with open(f"/proc/{entry.name}/cgroup") as groups:
                in_job = f"/{GROUP_PARENT}/" in groups.read()
        except OSError:  # gone meanwhile
            continue
        if in_job:
            pids.append(int(entry.name))
    return pids


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
