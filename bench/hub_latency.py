"""Hub latency: from `nbgrader submit` to feedback a student can fetch, against the notebook's own runtime.

Goals: submit -> feedback available <= the notebook's runtime in the grader (results.json
``execution_time``) + 10 s at the 95th percentile of 20 rounds (issue 12, grading overhead;
it was + 30 s in every round for the hosting issue), and the service picks a submission up
within 5 s of `nbgrader submit`. Both used to be asserted inside the browser
test (tests/hosting/test_browser.py), where a shared machine's load made them flaky; they
are measured and recorded here instead, and the exit status says whether every round met
them.

Runs against the local hub (`course hub up` first, as root; use COURSE_PROFILE=reduced
COURSE_WEIGHTS_MODE=stand-in for a quick run). For each round, as a student's Unix user:
fetch the assignment (once), put a notebook in place (the reference solution by default,
or the untouched release with --blank), `nbgrader submit`, then poll for the published
feedback file exactly where `nbgrader fetch_feedback` would look for it. Prints one JSON
line per round and a Markdown table for bench/RESULTS.md.

    sudo COURSE_PROFILE=reduced COURSE_WEIGHTS_MODE=stand-in .venv/bin/course hub up
    sudo .venv/bin/python bench/hub_latency.py --rounds 20 --json bench/out/hub-latency.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from autograder.course.config import load_course
from autograder.course.samples import reference_submission
from autograder.hosting import accounts, exchange
from autograder.hosting.hubconfig import hub_paths

GOAL_MARGIN_S = 10.0
"""Feedback within the notebook's own runtime plus this, at the 95th percentile of the rounds."""
PICKUP_GOAL_S = 5.0
"""The service sees a submission within this long of `nbgrader submit` starting (it polls every second)."""


def as_user(user: str, argv: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    account = accounts.lookup_account(user)
    assert account is not None, f"no user {user}: run `course hub up` first"
    env = {"HOME": str(account.home), "USER": user, "PATH": f"{sys.prefix}/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups", *argv],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)


def one_round(*, student: str, blank: bool, timeout_s: float) -> dict[str, float | str | None]:
    course = load_course()
    assignment = course.config.assignments[0]
    account = accounts.lookup_account(student)
    assert account is not None
    work = account.home / assignment.assignment_id
    if not work.is_dir():
        done = as_user(student, ["nbgrader", "fetch_assignment", assignment.assignment_id], cwd=account.home)
        assert done.returncode == 0, done.stderr[-800:]
    target = work / assignment.notebook
    if blank:  # the notebook exactly as released, whatever earlier rounds left in its place
        outbound = Path(course.config.hub.exchange_dir) / course.config.course_id / "outbound"
        shutil.copyfile(outbound / assignment.assignment_id / assignment.notebook, target)
    else:
        nbformat.write(reference_submission(course.source_dir(assignment.assignment_id) / assignment.notebook),
                       target)
    os.chown(target, account.uid, account.gid)
    cache = account.home / ".local/share/jupyter/nbgrader_cache" / course.config.course_id
    before = set(cache.iterdir()) if cache.is_dir() else set()
    t0 = time.time()
    done = as_user(student, ["nbgrader", "submit", assignment.assignment_id], cwd=account.home)
    submitted = time.time()
    assert done.returncode == 0, done.stderr[-800:]
    (entry,) = set(cache.iterdir()) - before
    secret = (entry / "submission_secret.txt").read_text()
    feedback_dir = Path(course.config.hub.exchange_dir) / course.config.course_id / "feedback"
    target = feedback_dir / f"{exchange.feedback_hash(secret, Path(assignment.notebook).stem)}.html"
    deadline = t0 + timeout_s
    while not target.exists() and time.time() < deadline:
        time.sleep(0.2)
    t1 = time.time() if target.exists() else None
    jobs = json.loads((hub_paths(course).service / "jobs.json").read_text())
    timestamp = entry.name.split("+")[2]
    job = next((j for j in jobs if j["student"] == student and j["submitted_at"] == timestamp), {})
    runtime = job.get("runtime_s")
    latency = (t1 - t0) if t1 else None
    return {
        "student": student, "notebook": "blank release" if blank else "reference solution",
        "submit_cmd_s": round(submitted - t0, 2), "submit_to_feedback_s": round(latency, 2) if latency else None,
        "notebook_runtime_s": runtime, "grade_s": round(job["finished_at"] - job["started_at"], 2) if job else None,
        "pickup_s": round(job["found_at"] - t0, 2) if job else None,
        "queue_wait_s": round(job["started_at"] - job["found_at"], 2) if job else None,
        "score": job.get("score"),
        "overhead_s": round(latency - runtime, 2) if latency and runtime is not None else None,
        "state": job.get("state"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--student", default=None, help="default: the last student in course_config.py")
    parser.add_argument("--blank", action="store_true", help="submit the untouched release notebook")
    parser.add_argument("--timeout-s", type=float, default=1200.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rounds and goals to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root (acts as a student's Unix user)", file=sys.stderr)
        return 2
    student = args.student or load_course().config.hub.students[-1]
    rows = []
    for _ in range(args.rounds):
        row = one_round(student=student, blank=args.blank, timeout_s=args.timeout_s)
        print(json.dumps(row), flush=True)
        rows.append(row)
    for r in rows:
        r["goal_met"] = meets_goals(r)
    print("\n| round | notebook | runtime (s) | pick-up (s) | submit -> feedback (s) | overhead (s) "
          f"| overhead <= {GOAL_MARGIN_S:g} s, pick-up <= {PICKUP_GOAL_S:g} s |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['notebook']} | {r['notebook_runtime_s']} | {r['pickup_s']} | {r['submit_to_feedback_s']} "
              f"| {r['overhead_s']} | {'yes' if r['goal_met'] else 'NO'} |")
    ok = [r for r in rows if r["overhead_s"] is not None]
    p95 = percentile([r["overhead_s"] for r in ok], 95) if len(ok) == len(rows) and ok else None
    if ok:
        print(f"\nmedian overhead {statistics.median(r['overhead_s'] for r in ok):.1f} s, "
              f"95th percentile {p95 if p95 is not None else 'n/a (a round got no feedback)'} s "
              f"(goal <= {GOAL_MARGIN_S:g} s: {'met' if p95 is not None and p95 <= GOAL_MARGIN_S else 'missed'}), "
              f"{len(ok)} of {len(rows)} round(s) with feedback")
    if args.json is not None:
        record = {"goals": {"overhead_s_p95": GOAL_MARGIN_S, "pickup_s": PICKUP_GOAL_S},
                  "overhead_p95_s": p95,
                  "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  "load_average": os.getloadavg(), "rounds": rows}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    pickups_ok = all(isinstance(r["pickup_s"], float) and r["pickup_s"] <= PICKUP_GOAL_S for r in rows)
    return 0 if rows and p95 is not None and p95 <= GOAL_MARGIN_S and pickups_ok else 1


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``pct`` % of the values at
    or below it (of 20 rounds, the 95th percentile is the 19th smallest)."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(pct / 100 * len(ranked)) - 1)]


def meets_goals(row: dict[str, float | str | None]) -> bool:
    """Feedback within runtime + GOAL_MARGIN_S, and picked up within PICKUP_GOAL_S."""
    overhead, pickup = row["overhead_s"], row["pickup_s"]
    return (isinstance(overhead, float) and overhead <= GOAL_MARGIN_S
            and isinstance(pickup, float) and pickup <= PICKUP_GOAL_S)


if __name__ == "__main__":
    sys.exit(main())
