"""Throughput of grading on a Dask cluster with 1 and with 2 workers, on loopback.

Each round starts a scheduler and k workers (each with its own course copy, as a grading
machine holds it), grades the same N param_counting submissions with `course grade`
(grading.executor = "dask" pointed at that scheduler over mutual TLS, from a client copy
without source or answer keys, as the hub's service holds it), and stops the cluster. Rounds
alternate 1, 2, 2, 1, 1, 2, … so that neither arm always runs on a warmer machine. Reports
each round's makespan, the median per arm, the median of the per-pair speed-ups, and
whether both arms gave every submission the same score. Appends one row to the
"Dask workers" section of bench/RESULTS.md.

    sudo .venv/bin/python bench/dask_workers.py [--submissions 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "grading"))

import dask_harness as harness  # noqa: E402  (shared with the cluster tests)

RESULTS = REPO / "bench" / "RESULTS.md"
BEGIN, END = "<!-- dask-workers:begin -->", "<!-- dask-workers:end -->"
HEAD = """## Dask workers

`bench/dask_workers.py`: the same param_counting submissions graded by `course grade`
through a loopback Dask scheduler with 1 and with 2 workers (each worker its own course
copy; rounds alternate). Makespan: `course grade` start to exit. Speed-up: median of the
per-pair ratios (1-worker makespan / 2-worker makespan of adjacent rounds).

| date (UTC) | commit | submissions | rounds per arm | 1 worker: makespans (s) | 2 workers: makespans (s) | speed-up (median of pairs) | same scores | machine | load before / after |
|---|---|---:|---:|---|---|---:|---|---|---|
"""


def _client(base: Path, port: int) -> tuple[Path, Path]:
    """(staff, client): staff calibrate and make the cluster's certificates; the client is
    what the hub's service holds in production (no source notebook, no answer key)."""
    staff = harness.course_copy(base / "staff")
    done = harness.course(staff, "calibrate", harness.AID, "--profile", "reduced", "--seeds", "1")
    if done.returncode != 0:
        raise SystemExit("calibration failed:\n" + done.stdout[-2000:] + done.stderr[-2000:])
    done = harness.course(staff, "dask", "certs", str(base / "tls"))
    if done.returncode != 0:
        raise SystemExit("course dask certs failed:\n" + done.stdout[-2000:] + done.stderr[-2000:])
    client = harness.course_copy(base / "client", secrets=False)
    with (client / "course_config.py").open("a") as cfg:
        cfg.write(f"\nimport dataclasses as _dc\nCOURSE = _dc.replace(COURSE, grading=_dc.replace("
                  f"COURSE.grading, executor='dask', dask_scheduler='tls://127.0.0.1:{port}', "
                  f"dask_tls_dir={str(base / 'tls')!r}))\n")
    return staff, client


def _round(base: Path, staff: Path, client: Path, port: int, workers: int, n: int,
           submissions: Path) -> tuple[float, dict]:
    address, tls = f"tls://127.0.0.1:{port}", base / "tls"
    world = {"base": base, "staff": staff, "client": client}
    procs = [harness.scheduler(port, base / f"scheduler-{n}.log", tls=tls)]
    try:
        for w in range(workers):
            root = base / f"r{n}-w{w}"
            shutil.rmtree(root, ignore_errors=True)
            harness.worker_copy(world, root.name)
            procs.append(harness.worker(address, root, root.name, base / f"{root.name}.log", tls=tls))
        harness.wait_for_workers(address, workers, tls=tls)
        out = base / f"out-{n}"
        start = time.monotonic()
        done = harness.course(client, "grade", harness.AID, str(submissions), "--out", str(out),
                              "--profile", "reduced", "--force", timeout_s=3600)
        wall = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"round {n} failed:\n" + done.stdout[-2000:] + done.stderr[-2000:])
        scores = {p.parent.name: json.loads(p.read_text())["score"] for p in out.glob("*/results.json")}
        return wall, scores
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _commit() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def _record(row: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{HEAD}{END}\n"
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    RESULTS.write_text(f"{head}{BEGIN}{body}{row}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per arm")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="course-dask-bench-"))
    base.chmod(0o755)
    load_before = os.getloadavg()[0]
    try:
        port = harness.free_port()
        staff, client = _client(base, port)
        harness.submissions(base / "submissions", count=args.submissions)
        order = [arm for pair in range(args.rounds) for arm in ((1, 2) if pair % 2 == 0 else (2, 1))]
        walls: dict[int, list[float]] = {1: [], 2: []}
        scores: dict[int, list[dict]] = {1: [], 2: []}
        for n, workers in enumerate(order):
            wall, got = _round(base, staff, client, port, workers, n, base / "submissions")
            print(f"round {n}: {workers} worker(s), {wall:.1f} s", flush=True)
            walls[workers].append(wall)
            scores[workers].append(got)
        ratios = [one / two for one, two in zip(walls[1], walls[2])]
        same = all(s == scores[1][0] for arm in scores.values() for s in arm)
        row = (f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | `{_commit()}` | {args.submissions} | "
               f"{args.rounds} | {', '.join(f'{w:.1f}' for w in walls[1])} | "
               f"{', '.join(f'{w:.1f}' for w in walls[2])} | {statistics.median(ratios):.2f}× | "
               f"{'yes' if same else 'NO'} | {platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} cores, Python {platform.python_version()} | "
               f"{load_before:.1f} / {os.getloadavg()[0]:.1f} |")
        print(row)
        _record(row)
        return 0 if same else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
