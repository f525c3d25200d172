"""Hub burst: 100 submissions from 30 students within a minute, through the grading service.

Measures, per submission, from the moment its folder is complete in the exchange's inbound
(as `nbgrader submit` leaves it):

- pick-up: until the service has queued it (it polls inbound every second);
- queue wait: from queued to its grading starting (the backlog; one student's submissions
  are graded one after the other);
- grading: `course grade` of that one submission (sandboxed kernel, confined checker);
- latency: from submitted to feedback published where `nbgrader fetch_feedback` looks;

and reports p50 / p95 / max of each, the makespan, and whether every submission was graded
exactly once and in per-student order. Appends one row with the commit and the machine to
the "Burst" section of bench/RESULTS.md.

The service runs standalone (``python -m autograder.hosting.service``, what the hub starts
as its managed service) over its own exchange folder, queue store and gradebook in a
temporary course root that shares the repository's source, release, data and embeddings;
submissions belong to real Unix users (``cfs00``…, system users without a home, kept for
the next run). Each submission is a small notebook (two answer cells and a sleep of a random
1–4 s): the figures are the service's and the grader's fixed costs under a backlog, not
TensorFlow training. ``--grader stub`` replaces `course grade` with a sleep (the queue alone).

    sudo COURSE_PROFILE=reduced COURSE_WEIGHTS_MODE=stand-in .venv/bin/python bench/hub_burst.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "tests" / "hosting"))

import service_harness as harness  # noqa: E402  (shared with the fault tests)
from autograder.course.config import load_course  # noqa: E402

ASSIGNMENT = "cnn_transfer"
NOTEBOOK = "cnn_transfer.ipynb"
RESULTS = REPO / "bench" / "RESULTS.md"
BEGIN, END = "<!-- burst:begin -->", "<!-- burst:end -->"
TABLE_HEAD = (
    "| date (UTC) | commit | grader | submissions / students / window | workers | "
    "pick-up p50 / p95 / max (s) | queue wait p50 / p95 / max (s) | grading p50 / p95 / max (s) | "
    "latency p50 / p95 / max (s) | makespan (s) | graded once, in order | machine | load before / after |\n"
    "|---|---|---|---|---:|---|---|---|---|---:|---|---|---|\n"
)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def triple(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, p):.1f}" for p in (50, 95, 100))


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    gpu = "no GPU" if shutil.which("nvidia-smi") is None else "GPU present"
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}, Python {platform.python_version()}"


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "autograder"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (autograder/ modified)" if dirty else "")


def notebook(key: dict, rng: random.Random) -> nbformat.NotebookNode:
    """Right answers from the key (when there is one), a sleep, more right answers."""
    a = key.get("answers", {})
    cells = [f"conv1_params = {a.get('conv1_params')!r}\nconv2_params = {a.get('conv2_params')!r}",
             f"import time\ntime.sleep({rng.uniform(1, 4):.2f})",
             "\n".join(f"{k} = {tuple(a.get(k, ()))!r}" for k in ("shape_stride1_valid", "shape_stride2_valid",
                                                                   "shape_stride2_same"))]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


def submit(inbound: Path, student: str, nb: nbformat.NotebookNode) -> tuple[Path, float]:
    """As `nbgrader submit` leaves it; returns the folder and when it became complete."""
    folder = harness.submit(inbound, student, nb, at=time.time())
    return folder, time.time()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(root: Path, env: dict[str, str], state: Path, log: Path) -> subprocess.Popen:
    port = free_port()
    prefix = "/services/autograder/"
    env = {**env, "COURSE_HUB_STATE": str(state), "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
           "JUPYTERHUB_SERVICE_PREFIX": prefix}
    with log.open("ab") as sink:
        process = subprocess.Popen([sys.executable, "-m", "autograder.hosting.service"], cwd=root, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{prefix}health", timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the service did not answer /health within 60 s")


def run_real(args: argparse.Namespace, base: Path, plan: list[tuple[float, str]], key: dict,
             rng: random.Random) -> tuple[dict[str, dict], dict[str, float], int]:
    world = harness.service_course(base, written_by="bench/hub_burst.py")
    root, env, course = world["root"], world["env"], world["course"]
    key = json.loads((root / "keys" / ASSIGNMENT / "reduced-stand-in.json").read_text())
    inbound = base / "exchange" / course.config.course_id / "inbound"
    state = base / "state"
    store = state / "service" / "jobs.json"
    service = start_service(root, env, state, base / "service.log")
    arrived: dict[str, float] = {}
    try:
        start = time.time()
        for offset, student in plan:
            time.sleep(max(0.0, start + offset - time.time()))
            folder, at = submit(inbound, student, notebook(key, rng))
            arrived[folder.name] = at
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            jobs = harness.jobs_on_disk(store)
            if len(jobs) == len(plan) and all(j["state"] not in ("queued", "grading") for j in jobs.values()):
                break
            if service.poll() is not None:
                raise SystemExit(f"the service exited: {(base / 'service.log').read_text()[-2000:]}")
            time.sleep(1)
        else:
            raise SystemExit(f"not all graded within {args.timeout:g} s")
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
    return harness.jobs_on_disk(store), arrived, max(1, course.config.grading.concurrency)


def run_stub(args: argparse.Namespace, base: Path, plan: list[tuple[float, str]], key: dict,
             rng: random.Random) -> tuple[dict[str, dict], dict[str, float], int]:
    from dataclasses import asdict

    from autograder.hosting.gradequeue import GradingQueue, JobStore, read_outcome
    from autograder.hosting.service import SCAN_INTERVAL_S

    inbound, feedback = base / "exchange" / "inbound", base / "exchange" / "feedback"
    inbound.mkdir(parents=True)
    feedback.mkdir()
    workers = max(1, load_course(REPO).config.grading.concurrency)

    async def stub(*, assignment_id: str, notebook: Path, student: str, out_dir: Path):
        await asyncio.sleep(args.stub_seconds)
        (out_dir / student).mkdir(parents=True)
        (out_dir / student / "results.json").write_text('{"score": 1, "max_score": 1, "tests": []}')
        (out_dir / student / "feedback.html").write_text("<p>1 / 1</p>")
        return read_outcome(out_dir, student)

    async def go() -> tuple[GradingQueue, dict[str, float]]:
        queue = GradingQueue(inbound=inbound, feedback_dir=feedback, work_dir=base / "work",
                             notebooks={ASSIGNMENT: NOTEBOOK}, runner=stub, feedback_gid=0,
                             store=JobStore(base / "jobs.json"))
        tasks = [asyncio.create_task(queue.run_scanner(interval_s=SCAN_INTERVAL_S))]
        tasks += [asyncio.create_task(queue.run_worker()) for _ in range(workers)]
        arrived, start = {}, time.time()
        for offset, student in plan:
            await asyncio.sleep(max(0.0, start + offset - time.time()))
            folder, at = submit(inbound, student, notebook(key, rng))
            arrived[folder.name] = at
        while not (len(queue.store.jobs) == len(plan)
                   and all(j.state in ("done", "failed") for j in queue.store.jobs.values())):
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        return queue, arrived

    queue, arrived = asyncio.run(go())
    return {j.job_id: asdict(j) for j in queue.store.jobs.values()}, arrived, workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which they arrive")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--grader", choices=("real", "stub"), default="real")
    parser.add_argument("--stub-seconds", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, default=None, help="write every job's figures here")
    parser.add_argument("--no-record", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: submissions belong to real Unix users, and grading is sandboxed")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    print(f"seed {seed}", flush=True)
    students = harness.ensure_students("cfs", args.students)
    counts = {s: 1 for s in students}
    for _ in range(args.submissions - len(students)):
        counts[rng.choice(students)] += 1
    plan = sorted((rng.uniform(0, args.window), s) for s, n in counts.items() for _ in range(n))
    key: dict = {}  # the real run reads the answers from its course root's key
    load_before = os.getloadavg()[0]
    measured = commit()  # the code the service and its graders start from
    base = Path(tempfile.mkdtemp(prefix="course-burst-"))
    base.chmod(0o755)
    began = time.time()
    try:
        run = run_real if args.grader == "real" else run_stub
        jobs, arrived, workers = run(args, base, plan, key, rng)
    finally:
        if args.grader == "stub" or os.environ.get("COURSE_BENCH_KEEP") is None:
            shutil.rmtree(base, ignore_errors=True)
    load_after = os.getloadavg()[0]

    lost = sorted(set(arrived) - set(jobs))
    failed = sorted(j for j, raw in jobs.items() if raw["state"] != "done")
    again = sorted(j for j, raw in jobs.items() if raw["attempts"] != 1)
    out_of_order = 0
    by_student: dict[str, list[dict]] = {}
    for raw in jobs.values():
        by_student.setdefault(raw["student"], []).append(raw)
    for mine in by_student.values():
        mine.sort(key=lambda j: j["submitted_at"])
        out_of_order += sum(later["started_at"] < earlier["finished_at"]
                            for earlier, later in zip(mine, mine[1:]))
    done = [(jid, raw) for jid, raw in jobs.items() if raw["state"] == "done" and jid in arrived]
    pickup = [raw["found_at"] - arrived[jid] for jid, raw in done]
    wait = [raw["started_at"] - raw["found_at"] for _, raw in done]
    grading = [raw["finished_at"] - raw["started_at"] for _, raw in done]
    latency = [raw["finished_at"] - arrived[jid] for jid, raw in done]
    makespan = max(raw["finished_at"] for _, raw in done) - began
    ok = not lost and not failed and not again and out_of_order == 0
    summary = {
        "seed": seed, "grader": args.grader, "submissions": len(arrived), "students": len(counts),
        "window_s": args.window, "workers": workers, "lost": lost, "failed": failed, "regraded": again,
        "out_of_order": out_of_order, "makespan_s": round(makespan, 1),
        **{f"{name}_{p}": round(percentile(v, q), 2) for name, v in
           (("pickup_s", pickup), ("queue_wait_s", wait), ("grading_s", grading), ("latency_s", latency))
           for p, q in (("p50", 50), ("p95", 95), ("max", 100))},
        "load_before": load_before, "load_after": load_after,
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "jobs": jobs, "arrived": arrived}, indent=1))
    row = (f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime(began))} | `{measured}` | "
           f"{'`course grade`' if args.grader == 'real' else f'stub ({args.stub_seconds:g} s)'} | "
           f"{len(arrived)} / {len(counts)} / {args.window:g} s | {workers} | {triple(pickup)} | "
           f"{triple(wait)} | {triple(grading)} | {triple(latency)} | {makespan:.0f} | "
           f"{'yes' if ok else f'NO: {len(lost)} lost, {len(failed)} failed, {len(again)} regraded, {out_of_order} out of order'}"
           f" | {machine()} | {load_before:.1f} / {load_after:.1f} |\n")
    print(row)
    if not args.no_record:
        record(row)
    return 0 if ok else 1


def record(row: str) -> None:
    text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmarks\n"
    if BEGIN not in text:
        text = text.rstrip("\n") + f"""

{BEGIN}
## Burst

`bench/hub_burst.py`: a burst of submissions from many students within a minute, through
the grade-on-submit service (standalone, over its own exchange folder, real Unix users,
`course grade` per submission unless the grader column says stub). Each submission is a
small notebook (two answer cells, a sleep of 1–4 s): the figures show the service's and the
grader's fixed costs under a backlog. Pick-up: complete in inbound → queued. Queue wait:
queued → grading starts. Grading: one `course grade`. Latency: complete in inbound →
feedback published. Percentiles are nearest-rank over all submissions of the run.

{TABLE_HEAD}{END}
"""
    head, rest = text.split(BEGIN, 1)
    section, tail = rest.split(END, 1)
    lines = section.splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if line.startswith("|"))  # the table's end
    lines.insert(last + 1, row)
    RESULTS.write_text(head + BEGIN + "".join(lines) + END + tail)


if __name__ == "__main__":
    sys.exit(main())
