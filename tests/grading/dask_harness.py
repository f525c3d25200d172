"""A Dask grading cluster on loopback, for the cluster tests (``test_dask_cluster.py``) and
the throughput benchmark (``bench/dask_workers.py``): course copies as grading machines hold
them (config, param_counting's source, release and answer keys), a scheduler and workers as
processes of their own (each in its own process group), and labelled submissions.

A plain module (not a conftest), so the benchmark can import it too."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat

from autograder.course.samples import reference_submission

REPO = Path(__file__).resolve().parents[2]
AID = "param_counting"
SUBMISSIONS = 20
BROKEN = {  # answer cell -> (the line changed in it, as the reference starts it; the item it costs)
    "a_dense_conv_params": ("dense_params =", "q1_dense_conv_params"),
    "a_pooling": ("pool_params =", "q1_pooling"),
    "a_embedding": ("embedding_params =", "q2_embedding"),
}

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def course_copy(root: Path, extra_config: str = "", *, secrets: bool = True) -> Path:
    """What a grading machine holds: config, param_counting's source and release (keys come
    from calibrating, or :func:`worker_copy`); without ``secrets``, what the hub's grading
    service holds in production: no source notebook (and no answer key)."""
    root.mkdir(mode=0o755)
    for name in ("course_config.py", "nbgrader_config.py"):
        (root / name).write_text((REPO / name).read_text() + extra_config)
    for folder in ("source", "release") if secrets else ("release",):
        shutil.copytree(REPO / folder / AID, root / folder / AID)
    return root


def worker_copy(world: dict, name: str) -> Path:
    """A worker's own copy, with the answer keys staff calibrated (``world["staff"]``, else
    the client's)."""
    root = course_copy(world["base"] / name)
    shutil.copytree((world["staff"] if "staff" in world else world["client"]) / "answer_keys", root / "answer_keys")
    return root


def env_of(root: Path) -> dict[str, str]:
    return {**os.environ, "COURSE_ROOT": str(root), "COURSE_PROFILE": "reduced",
            "COURSE_ASSIGNMENTS": AID}


def course(root: Path, *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.prefix + "/bin/course", *args], cwd=root, env=env_of(root),
                          capture_output=True, text=True, timeout=timeout_s)


def tls_args(tls: Path | None) -> list[str]:
    """The TLS options of ``dask scheduler``/``dask worker`` for the set in ``tls`` (none without)."""
    from autograder.grading import dask_tls

    return dask_tls.cli_args(tls) if tls is not None else []


def worker(address: str, root: Path, name: str, log: Path, *, tls: Path | None = None) -> subprocess.Popen:
    with log.open("w") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.prefix + "/bin/dask", "worker", address, "--nthreads", "1", "--name", name,
             "--no-dashboard", "--preload-nanny", "autograder.grading.dask_worker", *tls_args(tls)],
            cwd=root, env=env_of(root), stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: nanny, worker and kernels die together


def submissions(folder: Path, count: int = SUBMISSIONS) -> dict[str, set[str]]:
    """``count`` students: the reference with 0..3 answers broken (one answer too many, each);
    returns student -> the items that must lose their points."""
    source = REPO / "source" / AID / f"{AID}.ipynb"
    cells = list(BROKEN)
    plan = {}
    for i in range(count):
        broken = {cells[j] for j in range(len(cells)) if (i >> j) & 1}
        nb = reference_submission(source)
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid in broken:
                line = next(ln for ln in cell.source.splitlines() if ln.startswith(BROKEN[gid][0]))
                code, hashed, comment = line.partition("#")  # "+ 1" before any comment
                cell.source = cell.source.replace(line, code.rstrip() + " + 1" + (f"  #{comment}" if hashed else ""))
        student = f"s{i:02d}"
        (folder / student).mkdir(parents=True, mode=0o755)
        nbformat.write(nb, folder / student / f"{AID}.ipynb")
        plan[student] = {BROKEN[c][1] for c in broken}
    return plan


def scheduler(port: int, log: Path, *, tls: Path | None = None) -> subprocess.Popen:
    protocol = ["--protocol", "tls"] if tls is not None else []
    with log.open("a") as sink:
        return subprocess.Popen([sys.prefix + "/bin/dask", "scheduler", "--host", "127.0.0.1", "--port",
                                 str(port), "--no-dashboard", *protocol, *tls_args(tls)],
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_workers(address: str, count: int, *, tls: Path | None = None) -> None:
    from distributed import Client

    from autograder.grading import dask_tls

    with Client(address, timeout="60s", security=dask_tls.client_security(tls)) as c:
        c.wait_for_workers(count, timeout=180)
