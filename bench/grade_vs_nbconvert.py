"""Grading one submission vs a plain ``jupyter nbconvert --execute`` of the same notebook.

Goal (the grading-engine issue): ``course grade`` of the reference submission takes
at most 1.10x the wall time of executing it with nbconvert, although the grader also
builds a sandbox, exports facts, runs the rubric in a confined pytest process and
writes the reports.

Both arms run from this one process, alternating (round 0: nbconvert then grade,
round 1: grade then nbconvert, ...), so drift in the machine's load hits both; the
load average is sampled throughout and reported next to the figures. Both arms see
the same course settings: profile, stand-in ResNet50 weights (the same file), the
student data of ``release/cnn_transfer/data`` and the grader's seed.

Everything the grader writes goes to a throwaway course root (a copy of
course_config.py; source/, release/, datasets/ and answer_keys/ linked from the
repository): its gradebook, the embeddings cache, the outputs. The answer key is the
repository's ``answer_keys/`` (made once by ``course calibrate`` when missing,
outside the timed part), and the hidden splits are embedded once before timing, as
a real batch finds them cached.

The grader's time is split by watching its files (every 0.1 s, so +-0.1 s): start-up
until its per-job folder appears, the wait for the sandbox slot (a lock shared by
every grader on the machine), execution (``execution_time`` in results.json:
sandbox, kernel, cells, validated export), the check stage (from its job folder, made once the slot's machine-wide lock is held, plus
``execution_time``, until the checker's report is written: moving the exports, the confined pytest process loading the
.keras models and evaluating them on the hidden split), the reports (scoring, the feedback page, until results.json),
and the end (grader.log once the checker has exited, gradebook, grades.csv, interpreter exit). The checker starts with the notebook
and warms up while it runs (its imports, the answer key, the hidden splits); "pytest"
is its session after the facts arrived, and the warm-up is reported on its own
(``checker_warm_up``): it overlaps the execution, whose time it may stretch.

    .venv/bin/python bench/grade_vs_nbconvert.py [--profile full|reduced] [--rounds 3]

Writes ``bench/out/grade_vs_nbconvert-<profile>.json`` and prints a Markdown table;
bench/RESULTS.md is edited by hand (its "Grading engine" section).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
ASSIGNMENT = "cnn_transfer"
NOTEBOOK = "cnn_transfer.ipynb"
GRADER_SEED = "1234"  # course_config.py's grading.seed; the grader gives it to the kernel
ARCHIVED = ("course_config.py", "nbgrader_config.py", "autograder", "source", "release", "datasets")
GENERATED = ("datasets/build", "datasets/hidden")  # made by `course data build`, not committed

sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


# ---------------------------------------------------------------------------------------
# A throwaway course root, shared with grade_vs_nbgrader.py
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchRoot:
    """A course root of the bench's own: the committed tree (``git archive HEAD``: code,
    rubric, source/, release/ with its data), so that colleagues' uncommitted edits in
    the working tree cannot change or break a run; the generated datasets linked from
    the repository; and answer_keys/ linked too, so a calibration it makes is kept.
    Nothing else it writes (gradebook, embeddings cache, outputs) lands in the repository."""

    root: Path
    commit: str
    weights_dir: Path
    tmp_dir: Path
    """TMPDIR of the grader: its per-job folders appear here and nowhere else."""

    def env(self, profile: str) -> dict[str, str]:
        return {**os.environ, "COURSE_ROOT": str(self.root), "COURSE_PROFILE": profile,
                "COURSE_WEIGHTS_MODE": "stand-in", "COURSE_WEIGHTS_DIR": str(self.weights_dir),
                "PYTHONPATH": str(self.root),  # before the venv's editable install of the repo
                "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def grader_env(self, profile: str) -> dict[str, str]:
        return {**self.env(profile), "TMPDIR": str(self.tmp_dir)}

    def notebook_env(self, profile: str) -> dict[str, str]:
        """What the grader's sandbox gives the kernel that matters for the work done."""
        return {**self.env(profile), "COURSE_DATA_DIR": str(self.release / "data"),
                "COURSE_SEED": GRADER_SEED, "PYTHONHASHSEED": GRADER_SEED}

    @property
    def release(self) -> Path:
        return self.root / "release" / ASSIGNMENT

    @property
    def source_notebook(self) -> Path:
        return self.root / "source" / ASSIGNMENT / NOTEBOOK


def make_root(prefix: str) -> BenchRoot:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # sandbox uids and the checker (nobody) traverse it
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, *ARCHIVED], cwd=REPO,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    (REPO / "answer_keys").mkdir(exist_ok=True)
    (root / "answer_keys").symlink_to(REPO / "answer_keys")
    for name in GENERATED:
        (root / name).symlink_to(REPO / name)
    weights = root / "weights"
    weights.mkdir()
    weights.chmod(0o755)
    tmp = root / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    return BenchRoot(root=root, commit=commit, weights_dir=weights, tmp_dir=tmp)


def prepare(bench: BenchRoot, profile: str) -> dict[str, Any]:
    """Calibrate when the key is missing, make the stand-in weights and fill the
    embeddings cache: once, outside any timed part. Returns what was done."""
    key = REPO / "answer_keys" / ASSIGNMENT / f"{profile}-stand-in.json"
    done: dict[str, Any] = {"answer_key": str(key.relative_to(REPO))}
    if not key.is_file():
        print(f"no answer key at {key}: running `course calibrate` once (untimed) ...", flush=True)
        t0 = time.perf_counter()
        run_checked([str(VENV_BIN / "course"), "calibrate", ASSIGNMENT, "--profile", profile,
                     "--weights-mode", "stand-in"], env=bench.env(profile), cwd=bench.root)
        done["calibrated_s"] = round(time.perf_counter() - t0, 1)
    script = (
        "from pathlib import Path\n"
        "from autograder.course.config import load_course\n"
        "from autograder.grading.pipeline import make_context, with_embeddings\n"
        f"ctx = make_context(load_course(), {ASSIGNMENT!r}, profile_name={profile!r}, "
        f"out_dir=Path({str(bench.root / 'prep')!r}), weights_mode='stand-in')\n"
        "print(with_embeddings(ctx).embeddings_dir)\n"
    )
    t0 = time.perf_counter()
    run_checked([sys.executable, "-c", script], env=bench.env(profile), cwd=bench.root)
    done["prepare_s"] = round(time.perf_counter() - t0, 1)
    return done


def run_checked(argv: list[str], *, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed ({proc.returncode}):\n"
                         f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``interval_s``, for the report."""

    def __init__(self, interval_s: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop_event.wait(self.interval_s):
                return

    def stop(self) -> dict[str, float]:
        self._stop_event.set()
        self.join()
        s = self.samples or [os.getloadavg()[0]]
        return {"min": round(min(s), 2), "median": round(statistics.median(s), 2),
                "max": round(max(s), 2)}


class CpuSampler(threading.Thread):
    """CPU seconds of a process tree: every process ever seen in it, at its last sample.

    Sampled rather than taken from ``getrusage(RUSAGE_CHILDREN)`` because the grader's
    kernels live in a sandbox whose processes are not all reaped into this process's
    counters; a process that ends between two samples loses at most ``interval_s``.
    """

    def __init__(self, pid: int, *, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.cpu: dict[tuple[int, float], float] = {}
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                t = proc.cpu_times()
                self.cpu[(proc.pid, proc.create_time())] = t.user + t.system
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.sample()

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return sum(self.cpu.values())


def timed(argv: list[str], *, env: dict[str, str], cwd: Path,
          watch: Any = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process tree, output tail) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sampler = CpuSampler(proc.pid)
    sampler.start()
    if watch is not None:
        watch.start(t0)
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = sampler.stop()
    if watch is not None:
        watch.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n{out[-3000:]}")
    return wall, cpu, out[-2000:]


def machine() -> dict[str, Any]:
    from reference_runtime import machine_description

    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.strip()
    return {**machine_description(), "nproc": os.cpu_count(), "free_g": free}


# ---------------------------------------------------------------------------------------
# This benchmark
# ---------------------------------------------------------------------------------------


class GradeWatcher(threading.Thread):
    """When the grader's per-job folder, the checker's report, grader.log and results.json
    first appear."""

    def __init__(self, tmp_dir: Path, student_dir: Path) -> None:
        super().__init__(daemon=True)
        self.tmp_dir, self.student_dir = tmp_dir, student_dir
        self.t0 = 0.0
        self.seen: dict[str, float] = {}
        self._stop_event = threading.Event()

    def start(self, t0: float) -> None:  # type: ignore[override]
        self.t0 = t0
        super().start()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            now = time.perf_counter() - self.t0
            if "job_dir" not in self.seen and any(self.tmp_dir.glob("course-grade-*")):
                self.seen["job_dir"] = now
            if "executing" not in self.seen and any(self.tmp_dir.glob("course-grade-*/job")):
                self.seen["executing"] = now  # made once the slot's machine-wide lock is held
            if "report.json" not in self.seen and any(self.tmp_dir.glob("course-check-*/report.json")):
                self.seen["report.json"] = now  # the checker's report: the grader scores from it
            for name in ("grader.log", "results.json"):
                if name not in self.seen and (self.student_dir / name).is_file():
                    self.seen[name] = now

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Round:
    """One round: both arms, in the order they ran."""

    order: list[str]
    nbconvert_wall_s: float = 0.0
    nbconvert_cpu_s: float = 0.0
    nbconvert_cells_s: float = 0.0
    grade_wall_s: float = 0.0
    grade_cpu_s: float = 0.0
    grade_breakdown_s: dict[str, float] = field(default_factory=dict)
    score: str = ""
    load: dict[str, float] = field(default_factory=dict)


def cells_seconds(executed: Path) -> float:
    """Sum of the code cells' run times, from the timing nbclient records in each cell's
    metadata (``iopub.execute_input`` to ``shell.execute_reply``): the same quantity as
    the grader's per-cell ``runtime_s``."""
    from datetime import datetime

    import nbformat

    total = 0.0
    for cell in nbformat.read(executed, as_version=4).cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            total += (end - start).total_seconds()
    return total


def run_nbconvert(bench: BenchRoot, notebook: Path, profile: str) -> tuple[float, float, float]:
    work = Path(tempfile.mkdtemp(prefix="nbconvert-", dir=bench.root))
    try:
        for name in ("course_helpers.py", "settings.json"):
            shutil.copy2(bench.release / name, work / name)
        shutil.copy2(notebook, work / NOTEBOOK)
        wall, cpu, _ = timed(
            [str(VENV_BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
             "--ExecutePreprocessor.timeout=-1", "--output", "executed.ipynb", NOTEBOOK],
            env=bench.notebook_env(profile), cwd=work)
        return wall, cpu, cells_seconds(work / "executed.ipynb")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_grade(bench: BenchRoot, notebook: Path, profile: str) -> tuple[float, float, dict, str]:
    out = Path(tempfile.mkdtemp(prefix="graded-", dir=bench.root))
    out.chmod(0o755)
    try:
        watch = GradeWatcher(bench.tmp_dir, out / "ref")
        wall, cpu, _ = timed(
            [str(VENV_BIN / "course"), "grade", ASSIGNMENT, str(notebook), "--student", "ref",
             "--out", str(out), "--force", "--profile", profile, "--weights-mode", "stand-in"],
            env=bench.grader_env(profile), cwd=bench.root, watch=watch)
        results = json.loads((out / "ref" / "results.json").read_text())
        cells_s = sum(c["runtime_s"] for c in results["extra_data"]["cells"])
        execution_s = results["execution_time"]
        seen = watch.seen
        start = seen.get("job_dir", 0.0)
        executing = seen.get("executing", start)
        # The check stage ends when the checker's report is written (the grader scores from it;
        # since fc8f314 grader.log is written after results.json, once the checker has exited).
        check_end = seen.get("report.json", seen.get("grader.log", wall))
        report_end = seen.get("results.json", wall)
        log = (out / "ref" / "grader.log").read_text() if (out / "ref" / "grader.log").is_file() else ""
        pytest_s = re.findall(r" in ([0-9.]+)s", log)
        # A checker started with the notebook (issue 12) says how long it warmed up and waited;
        # the rest of its session is the judging after the facts arrived.
        early = re.search(r"checker warmed up in ([0-9.]+) s, then waited ([0-9.]+) s", log)
        before_facts = float(early.group(1)) + float(early.group(2)) if early else 0.0
        breakdown = {
            "startup": start,
            "slot_wait": executing - start,
            "execution": execution_s,
            "of_which_cells": cells_s,
            "of_which_sandbox_kernel_export": execution_s - cells_s,
            "check_stage": check_end - executing - execution_s,
            "of_which_pytest_session": (float(pytest_s[-1]) - before_facts) if pytest_s
            else float("nan"),
            "checker_warm_up": float(early.group(1)) if early else 0.0,
            "reports": report_end - check_end,
            "end": wall - report_end,
            "rest_after_execution": wall - execution_s,
        }
        score = f"{results['score']:g} / {results['max_score']:g}"
        lost = [t["name"] for t in results["tests"] if t["score"] < t["max_score"]]
        if lost:
            score += f" (lost: {', '.join(lost)})"
        return wall, cpu, {k: round(v, 2) for k, v in breakdown.items()}, score
    finally:
        shutil.rmtree(out, ignore_errors=True)


def median(rounds: list[Round], attr: str) -> float:
    return round(statistics.median(getattr(r, attr) for r in rounds), 2)


def render(rounds: list[Round], summary: dict[str, Any]) -> str:
    lines = [
        f"profile **{summary['profile']}**, stand-in weights, {len(rounds)} rounds, "
        f"{summary['finished_utc']}",
        "",
        "| round | order | nbconvert wall (cells) | grade wall | ratio | nbconvert CPU-s | grade CPU-s | "
        "grade: execution (cells) | grade: check stage (pytest) | grade: start-up / slot wait / reports / end | score | load 1-min min–max |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for n, r in enumerate(rounds, 1):
        b = r.grade_breakdown_s
        lines.append(
            f"| {n} | {' → '.join(r.order)} | {r.nbconvert_wall_s:.1f} ({r.nbconvert_cells_s:.1f}) s | "
            f"{r.grade_wall_s:.1f} s | "
            f"{r.grade_wall_s / r.nbconvert_wall_s:.2f} | {r.nbconvert_cpu_s:.0f} | {r.grade_cpu_s:.0f} | "
            f"{b['execution']:.1f} ({b['of_which_cells']:.1f}) s | "
            f"{b['check_stage']:.1f} ({b['of_which_pytest_session']:.1f}) s | "
            f"{b['startup']:.1f} / {b['slot_wait']:.1f} / {b['reports']:.1f} / {b['end']:.1f} s | {r.score} | "
            f"{r.load['min']:.1f}–{r.load['max']:.1f} |")
    prepare_s = summary["prepared"].get("prepare_s", 0.0)
    lines += [
        "",
        f"median of the per-round wall ratios **{summary['ratio']:.2f}** (goal ≤ 1.10: "
        f"{'met' if summary['ratio'] <= 1.10 else 'missed'}); median of the per-round CPU "
        f"ratios **{summary['cpu_ratio']:.2f}** (goal ≤ 1.20: "
        f"{'met' if summary['cpu_ratio'] <= 1.20 else 'missed'}). Medians: nbconvert "
        f"{summary['nbconvert_wall_s']:.1f} s, grade {summary['grade_wall_s']:.1f} s (ratio of "
        f"medians {summary['ratio_of_medians']:.2f}); CPU-seconds nbconvert "
        f"{summary['nbconvert_cpu_s']:.0f}, grade {summary['grade_cpu_s']:.0f}.",
        f"Preparation outside the timing (embeddings cache{', calibration' if 'calibrated_s' in summary['prepared'] else ''}): "
        f"{prepare_s:.1f} s; the first submission after a change of weights, profile or data pays "
        f"it: {summary['grade_wall_s'] + prepare_s:.1f} s "
        f"(ratio {(summary['grade_wall_s'] + prepare_s) / summary['nbconvert_wall_s']:.2f}).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("full", "reduced"), default="full")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway course root")
    args = parser.parse_args(argv)

    from autograder.course.samples import write_samples

    bench = make_root("bench-grade-nbconvert-")
    try:
        notebook = write_samples(bench.source_notebook, bench.root / "samples",
                                 names=["reference"])["reference"]
        for p in (notebook.parent.parent, notebook.parent, notebook):
            p.chmod(0o755 if p.is_dir() else 0o644)
        prepared = prepare(bench, args.profile)
        print(f"prepared: {prepared}", flush=True)
        rounds: list[Round] = []
        for n in range(args.rounds):
            order = ["nbconvert", "grade"] if n % 2 == 0 else ["grade", "nbconvert"]
            r = Round(order=order)
            sampler = LoadSampler()
            sampler.start()
            for arm in order:
                print(f"round {n + 1}/{args.rounds}: {arm} ...", flush=True)
                if arm == "nbconvert":
                    r.nbconvert_wall_s, r.nbconvert_cpu_s, r.nbconvert_cells_s = run_nbconvert(bench, notebook, args.profile)
                else:
                    r.grade_wall_s, r.grade_cpu_s, r.grade_breakdown_s, r.score = run_grade(
                        bench, notebook, args.profile)
            r.load = sampler.stop()
            rounds.append(r)
            print(json.dumps(asdict(r)), flush=True)
        summary = {
            "profile": args.profile, "rounds": args.rounds, "commit": bench.commit,
            "nbconvert_wall_s": median(rounds, "nbconvert_wall_s"),
            "grade_wall_s": median(rounds, "grade_wall_s"),
            "nbconvert_cells_s": median(rounds, "nbconvert_cells_s"),
            "nbconvert_cpu_s": median(rounds, "nbconvert_cpu_s"),
            "grade_cpu_s": median(rounds, "grade_cpu_s"),
            "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "prepared": prepared, "machine": machine(),
        }
        # The headline is the median of the per-round ratios (each round runs both arms under
        # the same load); the ratio of the medians can pair a fast round with a slow one.
        summary["ratio"] = round(statistics.median(
            r.grade_wall_s / r.nbconvert_wall_s for r in rounds), 3)
        summary["cpu_ratio"] = round(statistics.median(
            r.grade_cpu_s / r.nbconvert_cpu_s for r in rounds), 3)
        summary["ratio_of_medians"] = round(summary["grade_wall_s"] / summary["nbconvert_wall_s"], 3)
        summary["median_breakdown_s"] = {
            k: round(statistics.median(r.grade_breakdown_s[k] for r in rounds), 2)
            for k in rounds[0].grade_breakdown_s}
        out = REPO / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"grade_vs_nbconvert-{args.profile}.json").write_text(
            json.dumps({"summary": summary, "rounds": [asdict(r) for r in rounds]}, indent=2) + "\n")
        print(render(rounds, summary))
        print(json.dumps(summary["median_breakdown_s"]))
        return 0
    finally:
        if args.keep:
            print(f"kept {bench.root}")
        else:
            shutil.rmtree(bench.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
