"""Faults in the middle of a batch (issue 8): `course grade` killed -9, a kernel killed -9.

Each test grades a batch of 20 cheap submissions — two or three small code cells that set a
few answers and sleep a random 1–4 s — through the real parts only: `course grade` as its own
process, the sandboxed kernel, the confined pytest checker, the report files and nbgrader's
gradebook. The random choices (where to kill, which job, the sleeps) come from one seed,
printed at the start of each test and settable with ``COURSE_FAULT_SEED`` to replay a run.

What "graded exactly once" is checked against, after the fault and a restart:

- every student has one ``results.json`` that is a grade (no grader-error placeholder);
- ``grades.csv`` has one row per student, and each row is that student's results.json;
- nbgrader's gradebook (read through ``nbgrader.api.Gradebook``) has one submission per
  student, with one grade per rubric item equal to the item's score in results.json;
- a result written before the fault is not written again (same inode, same mtime).
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from autograder.course.config import load_course
from autograder.grading import sandbox, sandbox_users
from autograder.grading.stage import STAGE_ROOT
from autograder.grading.pipeline import make_context
from e2e_support import open_dir

real_batch = pytest.mark.slow, pytest.mark.kernel, pytest.mark.sandbox


def _marked(test):
    for mark in real_batch:
        test = mark(test)
    return test

REPO = Path(__file__).resolve().parents[2]
BATCH = 20
CONCURRENCY = 3
"""Three slots: the third overlaps one job's sleep with another's checker on two cores."""
ASSIGNMENT = "cnn_transfer"
NOTEBOOK = "cnn_transfer.ipynb"
KERNEL_MARKER = "fault-target-running"


def _seed() -> int:
    seed = int(os.environ.get("COURSE_FAULT_SEED") or random.SystemRandom().randrange(10**6))
    print(f"fault seed: {seed} (COURSE_FAULT_SEED={seed} replays this run)")
    return seed


@pytest.fixture(scope="module")
def fault_root(calibrated, e2e_root):
    """A course root for `course grade` subprocesses: the repository's source, release and
    data, the session's calibrated key and embeddings, three grading slots."""
    course, key = calibrated
    root = open_dir("course-faults-")
    for name in ("source", "release", "datasets"):
        (root / name).symlink_to(REPO / name)
    state = root / ".course-state"
    state.mkdir(mode=0o755)
    (state / "embeddings").symlink_to(e2e_root / ".course-state" / "embeddings")
    c = course.config
    (root / "course_config.py").write_text((REPO / "course_config.py").read_text() + f"""
# Written by tests/grading/test_faults.py: the e2e session's key, margin and limits.
import dataclasses as _dc
COURSE = _dc.replace(
    COURSE,
    limits=_dc.replace(COURSE.limits, cell_timeout_s=120, notebook_budget_s=600, memory_mb=4096),
    grading=_dc.replace(COURSE.grading, concurrency={CONCURRENCY}, seed={c.grading.seed},
                        answer_key_dir={c.grading.answer_key_dir!r}),
    assignments=(_dc.replace(COURSE.assignments[0],
                             accuracy_margin={c.assignments[0].accuracy_margin!r}),),
)
""")
    sandbox_users.ensure_sandbox_users(c.grading.sandbox_user_prefix, CONCURRENCY)
    # Fails here, not in a subprocess, if the key does not fit this root.
    make_context(load_course(root), ASSIGNMENT, profile_name="reduced", out_dir=root / "out",
                 weights_mode="stand-in")
    yield root, key
    shutil.rmtree(root, ignore_errors=True)


def _answers_cells(key: dict) -> tuple[str, str]:
    """Two cells of right answers, from the calibrated key (never typed in): the conv
    parameter counts (q1_conv_params) and the output shapes (q1_output_shapes)."""
    a = key["answers"]
    first = f"conv1_params = {a['conv1_params']!r}\nconv2_params = {a['conv2_params']!r}"
    second = "\n".join(f"{name} = {tuple(a[name])!r}" for name in
                       ("shape_stride1_valid", "shape_stride2_valid", "shape_stride2_same"))
    return first, second


def _write(subs: Path, student: str, cells: list[str]) -> None:
    (subs / student).mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    nbformat.write(nb, subs / student / NOTEBOOK)


def _gradebook(out: Path) -> Path:
    """Each test's own gradebook, beside its output folder."""
    return out.with_name(out.name + "-gradebook.db")


def _grade_argv(root: Path, subs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "autograder.cli", "grade", ASSIGNMENT, str(subs), "--out",
            str(out), "--gradebook", str(_gradebook(out)), "--profile", "reduced",
            "--weights-mode", "stand-in"]


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "COURSE_ROOT": str(root), "COLUMNS": "200"}


def _results(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}


def _processes_in_job_groups(students: set[str]) -> list[str]:
    """Live processes in a job cgroup of one of ``students`` (named ``<student>-<hex>``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            groups = (proc / "cgroup").read_text()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        names = set(re.findall(rf"/{sandbox.GROUP_PARENT}/([^/\n]+)-[0-9a-f]{{8}}\b", groups))
        if names & students and state != "Z":
            found.append(f"{proc.name} in {sorted(names)}")
    return found


def _assert_each_graded_once(out: Path, students: set[str]) -> dict[str, dict]:
    """results.json, grades.csv and the gradebook agree, with exactly one entry per student."""
    from nbgrader.api import Gradebook

    results = _results(out)
    assert set(results) == students, sorted(set(results) ^ students)
    errors = {s: r["extra_data"]["grader_error"] for s, r in results.items()
              if r["extra_data"].get("grader_error")}
    assert errors == {}

    with (out / "grades.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["student"] for r in rows) == sorted(students)  # one row each, no duplicate
    for row in rows:
        data = results[row["student"]]
        assert float(row["score"]) == data["score"]
        assert row["kernel_status"] == data["extra_data"]["kernel_status"]
        for test in data["tests"]:
            assert float(row[test["name"]]) == test["score"], (row["student"], test["name"])

    db = _gradebook(out)
    with Gradebook(f"sqlite:///{db}") as gb:
        submissions = gb.assignment_submissions(ASSIGNMENT)
        assert sorted(s.student_id for s in submissions) == sorted(students)
        for submission in submissions:
            (notebook,) = submission.notebooks
            recorded = {g.name: g.auto_score for g in notebook.grades}
            wanted = {t["name"]: t["score"] for t in results[submission.student_id]["tests"]}
            assert recorded == wanted, submission.student_id
    with sqlite3.connect(db) as con:  # and underneath the API: no second row of anything
        assert con.execute("SELECT student_id, COUNT(*) FROM submitted_assignment "
                           "GROUP BY student_id HAVING COUNT(*) > 1").fetchall() == []
        assert con.execute("SELECT notebook_id, cell_id, COUNT(*) FROM grade "
                           "GROUP BY notebook_id, cell_id HAVING COUNT(*) > 1").fetchall() == []
    return results


@_marked
def test_course_grade_killed_mid_batch_resumes_and_grades_each_submission_once(fault_root):
    """`course grade` of 20 submissions is killed with SIGKILL when its k-th results.json
    appears (k random, 1 <= k < 20), at once or a random moment later; a second `course
    grade` must grade the rest, leave the first k alone, and end with the files, the CSV and
    the gradebook agreeing, one entry per student."""
    root, key = fault_root
    rng = random.Random(_seed())
    first_cell, second_cell = _answers_cells(key)
    subs, out = root / "kill-grade-subs", root / "kill-grade-out"
    students = {f"kg{n:02d}" for n in range(BATCH)}
    for student in sorted(students):
        _write(subs, student, [first_cell, f"import time\ntime.sleep({rng.uniform(1, 4):.2f})",
                               second_cell])
    kill_after = rng.randint(1, BATCH - 1)
    # Half the runs kill at once (between a result on disk and its gradebook entry), half a
    # moment later (a kernel running, a checker checking, a report half-written).
    extra = rng.choice([0.0, rng.uniform(0.1, 3.0)]) if kill_after <= BATCH - 3 else 0.0
    print(f"killing `course grade` {extra:.2f} s after result {kill_after} of {BATCH} appears")

    argv, env = _grade_argv(root, subs, out), _env(root)
    log = root / "kill-grade-first.log"
    with log.open("wb") as sink:
        first = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    try:
        while len(list(out.glob("*/results.json"))) < kill_after:
            assert first.poll() is None, f"finished before the kill:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no progress within 900 s"
            time.sleep(0.01)
        time.sleep(extra)
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the grader alone, as `kill -9 <pid>` does
        first.wait()
    before = {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns)
              for p in out.glob("*/results.json")}
    print(f"results on disk at the kill: {len(before)}")
    assert kill_after <= len(before) < BATCH

    # The kernels die with their grader (bubblewrap's --die-with-parent): nothing is left
    # running in the killed batch's job cgroups.
    deadline = time.monotonic() + 10
    while (left := _processes_in_job_groups(students)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []

    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    results = _assert_each_graded_once(out, students)
    after = {s: (p.stat().st_ino, p.stat().st_mtime_ns)
             for s in before for p in [out / s / "results.json"]}
    assert after == before  # graded before the kill: not graded a second time
    # every submission got the same (right) answers, so every grade is the same
    assert len({json.dumps(r["tests"], sort_keys=True) for r in results.values()}) == 1


def _kernel_pid(student: str) -> int | None:
    """The sandboxed ipykernel of ``student``'s job, found by its job cgroup and its argv."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            groups = (proc / "cgroup").read_text()
        except OSError:
            continue
        if (b"ipykernel_launcher" in argv
                and re.search(rf"/{sandbox.GROUP_PARENT}/{re.escape(student)}-[0-9a-f]{{8}}\b", groups)):
            return int(proc.name)
    return None


@_marked
def test_a_kernel_killed_mid_batch_costs_only_its_own_submission(fault_root):
    """In a batch of 20, one submission's sandboxed kernel (chosen at random) is killed with
    SIGKILL at a random moment of its long cell: that submission's result says the kernel
    died in that cell and keeps the credit for the cells before it (they are replayed);
    the 19 others are graded as if nothing happened, each exactly once."""
    from autograder.grading import messages

    root, key = fault_root
    rng = random.Random(_seed())
    first_cell, second_cell = _answers_cells(key)
    subs, out = root / "kill-kernel-subs", root / "kill-kernel-out"
    students = [f"kk{n:02d}" for n in range(BATCH)]
    target = rng.choice(students)
    delay = rng.uniform(0.2, 3.0)
    print(f"killing the kernel of {target} {delay:.2f} s into its second cell")
    for student in students:
        middle = f"import time\ntime.sleep({rng.uniform(1, 4):.2f})"
        if student == target:
            middle = f"import time\nopen({KERNEL_MARKER!r}, 'w').close()\ntime.sleep(60)"
        _write(subs, student, [first_cell, middle, second_cell])

    killed: list[int] = []

    def kill_the_target_kernel() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if list(STAGE_ROOT.glob(f"*/scratch/work/{KERNEL_MARKER}")):
                time.sleep(delay)
                pid = _kernel_pid(target)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_target_kernel, daemon=True)
    killer.start()
    done = subprocess.run(_grade_argv(root, subs, out), env=_env(root), capture_output=True,
                          text=True, timeout=900)
    killer.join(timeout=5)
    assert killed, "the target's kernel was never found running its long cell"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = _assert_each_graded_once(out, set(students))

    hit = results.pop(target)
    ex = hit["extra_data"]
    assert ex["kernel_status"] == "died"
    cells = {c["index"]: c for c in ex["cells"]}
    assert cells[0]["status"] == "ok"
    assert cells[1]["status"] == "killed" and cells[1]["limit"] == "kernel_died"
    assert "kernel died" in cells[1]["message"] and "SIGKILL" in cells[1]["message"]
    assert cells[2]["status"] == "not-run"
    assert messages.REPLAYED.format(cell=2, last=1) in hit["output"]

    # The others: untouched, all alike (same answers), every cell run.
    assert len({json.dumps(r["tests"], sort_keys=True) for r in results.values()}) == 1
    for student, other in results.items():
        assert other["extra_data"]["kernel_status"] == "finished", student
        assert {c["status"] for c in other["extra_data"]["cells"]} == {"ok"}, student
    other_items = {t["name"]: t for t in next(iter(results.values()))["tests"]}
    hit_items = {t["name"]: t for t in hit["tests"]}
    # Partial credit: what the first cell defined (replayed) is graded as for everyone else;
    # what the killed cell's successor would have defined is lost, and the item says why.
    assert hit_items["q1_conv_params"] == other_items["q1_conv_params"]
    assert other_items["q1_output_shapes"]["score"] > 0
    lost = hit_items["q1_output_shapes"]
    assert lost["score"] == 0 and "stopped at cell 2" in lost["output"]
    assert "kernel die" in lost["output"]
    assert hit["score"] == pytest.approx(
        sum(t["score"] for t in other_items.values()) - other_items["q1_output_shapes"]["score"])


def test_a_grade_on_disk_but_not_yet_in_the_gradebook_is_recorded_by_the_resume(tmp_path):
    """The window the kill test aims at, made certain: a results.json written, the batch
    killed before its gradebook entry. The next batch skips that student (not graded twice)
    and records the grade from the file, so the gradebook is not missing it for good."""
    from nbgrader.api import Gradebook

    from autograder.course.config import Course
    from autograder.facts import ExecutionResult, GradeResult, ItemResult
    from autograder.grading.jobs import GradeJob, LocalExecutor, run_batch
    from autograder.grading.pipeline import GradingContext
    from autograder.grading.report import write_student_reports

    loaded = load_course(REPO)
    course = Course(root=tmp_path, config=loaded.config)
    ctx = GradingContext(course=course, assignment=course.config.assignments[0],
                         profile_name="reduced", weights_mode="stand-in", weights_file=None,
                         key_file=tmp_path / "key.json", grading_dir=tmp_path,
                         validation_dir=tmp_path, out_dir=tmp_path / "out")
    points = ctx.assignment.points
    items = tuple(ItemResult(name, float(max_score) / 2, float(max_score), False, "half")
                  for name, max_score in points.items())
    execution = ExecutionResult(student="ann", cells=(), kernel_status="finished", wall_s=1.0)
    result = GradeResult("ann", ASSIGNMENT, sum(i.score for i in items),
                         float(sum(points.values())), items, execution)
    write_student_reports(result, ctx.out_dir / "ann", limits={})  # ...and then kill -9

    def must_not_grade(ctx, job, *, slot):
        raise AssertionError(f"{job.student} was graded a second time")

    outcome = run_batch(ctx, [GradeJob("ann", tmp_path / "ann.ipynb")], grade=must_not_grade,
                        prepare=lambda c: c, executor=LocalExecutor(1))
    assert outcome.skipped == ["ann"] and outcome.failed == {}
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        (submission,) = gb.assignment_submissions(ASSIGNMENT)
        (notebook,) = submission.notebooks
        assert submission.student_id == "ann"
        assert {g.name: g.auto_score for g in notebook.grades} == {i.name: i.score for i in items}
