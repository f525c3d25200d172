"""Grading 10 submissions: ``course grade`` vs ``nbgrader autograde`` of the same 10.

Goal (the grading-engine issue): at least nbgrader's throughput (submissions per
minute), while also doing what nbgrader does not: a sandboxed kernel per submission,
the exports, and the rubric in a confined process outside the student's kernel.

The 10 submissions are the samples of ``autograder.course.samples`` (reference,
wrong_params, unfrozen_backbone, wider_head, repeated in turn) under distinct
student ids. nbgrader grades them in a throwaway nbgrader course directory: the
committed ``nbgrader_config.py`` and ``course_config.py`` (plus a high
``ExecutePreprocessor.timeout``, so its default cell timeout cannot cut training
short), ``source/cnn_transfer/`` with ``course_helpers.py`` and ``settings.json``
(autograde copies them next to each notebook), ``generate_assignment`` into its
gradebook (untimed), then ``submitted/<student>/cnn_transfer/cnn_transfer.ipynb``;
it runs them one at a time. ``course grade`` grades ``<student>/cnn_transfer.ipynb``
twice per round: at nbgrader's concurrency (1, the equal-footing comparison) and at the
concurrency of course_config.py (``grading.concurrency``, 2: the best configuration).
Each round's ratio is taken within the round; the headline is the median of those.
The scores both tools gave each submission are printed side by side (they need not be
equal: nbgrader runs the notebook's hidden tests in the student's kernel, the kit its
own rubric outside it; a difference is listed so a reader can judge it).

Both run from this one process with the same settings (profile, stand-in weights,
student data, seed); with several rounds the order alternates. The reduced profile
is the default here: at the full profile one arm takes 15 minutes or more on 2 cores.

    .venv/bin/python bench/grade_vs_nbgrader.py [--profile reduced|full] [--rounds 3] [--count 10]

Writes ``bench/out/grade_vs_nbgrader-<profile>.json`` and prints a Markdown table;
bench/RESULTS.md is edited by hand (its "Grading engine" section).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grade_vs_nbconvert import (
    ASSIGNMENT,
    NOTEBOOK,
    REPO,
    VENV_BIN,
    BenchRoot,
    LoadSampler,
    machine,
    make_root,
    prepare,
    timed,
)

VARIANTS = ("reference", "wrong_params", "unfrozen_backbone", "wider_head")
NBGRADER_TIMEOUT_S = 3600


@dataclass
class Arm:
    """One tool grading all submissions once."""

    tool: str
    wall_s: float
    cpu_s: float
    per_minute: float
    scores: dict[str, float] = field(default_factory=dict)
    notebook_s: dict[str, float] = field(default_factory=dict)
    """Per student: the grader's ``execution_time`` (course grade only)."""
    load: dict[str, float] = field(default_factory=dict)


def make_submissions(bench: BenchRoot, count: int) -> dict[str, Path]:
    """``<student id>: notebook``, cycling through the sample variants."""
    from autograder.course.samples import write_samples

    samples = write_samples(bench.source_notebook, bench.root / "samples", names=list(VARIANTS))
    folder = bench.root / "submissions"
    out = {}
    for n in range(count):
        student = f"s{n + 1:02d}-{VARIANTS[n % len(VARIANTS)]}"
        path = folder / student / NOTEBOOK
        path.parent.mkdir(parents=True)
        shutil.copy2(samples[VARIANTS[n % len(VARIANTS)]], path)
        out[student] = path
    subprocess.run(["chmod", "-R", "a+rX", str(folder)], check=True)
    return out


def make_nbgrader_course(bench: BenchRoot, submissions: dict[str, Path], profile: str) -> Path:
    """An nbgrader course directory holding the same submissions, assignment generated."""
    course = bench.root / "nbgrader-course"
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for name in (NOTEBOOK, "course_helpers.py", "settings.json"):
        shutil.copy2(bench.root / "source" / ASSIGNMENT / name, source / name)
    shutil.copy2(bench.root / "course_config.py", course / "course_config.py")
    config = (bench.root / "nbgrader_config.py").read_text()
    config += ("\n# bench/grade_vs_nbgrader.py: nbgrader's cell timeout must not cut training short\n"
               f"c.ExecutePreprocessor.timeout = {NBGRADER_TIMEOUT_S}\n")
    (course / "nbgrader_config.py").write_text(config)
    for student, notebook in submissions.items():
        target = course / "submitted" / student / ASSIGNMENT / NOTEBOOK
        target.parent.mkdir(parents=True)
        shutil.copy2(notebook, target)
    proc = subprocess.run([str(VENV_BIN / "nbgrader"), "generate_assignment", ASSIGNMENT, "--force"],
                          cwd=course, env=bench.notebook_env(profile), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return course


def nbgrader_scores(course: Path, students: list[str]) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s: gb.find_submission(ASSIGNMENT, s).score for s in students}


def run_nbgrader(bench: BenchRoot, course: Path, students: list[str], profile: str) -> Arm:
    shutil.rmtree(course / "autograded", ignore_errors=True)
    sampler = LoadSampler()
    sampler.start()
    wall, cpu, out = timed([str(VENV_BIN / "nbgrader"), "autograde", ASSIGNMENT, "--create", "--force"],
                           env=bench.notebook_env(profile), cwd=course)
    load = sampler.stop()
    done = [s for s in students if (course / "autograded" / s / ASSIGNMENT / NOTEBOOK).is_file()]
    if len(done) != len(students):
        raise SystemExit(f"nbgrader autograded {len(done)} of {len(students)}:\n{out}")
    return Arm(tool="nbgrader autograde", wall_s=round(wall, 1), cpu_s=round(cpu),
               per_minute=round(len(students) / wall * 60, 2),
               scores=nbgrader_scores(course, students), load=load)


def run_course_grade(bench: BenchRoot, folder: Path, students: list[str], profile: str,
                     concurrency: int) -> Arm:
    out = bench.root / "graded"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    out.chmod(0o755)
    sampler = LoadSampler()
    sampler.start()
    wall, cpu, log = timed([str(VENV_BIN / "course"), "grade", ASSIGNMENT, str(folder), "--out", str(out),
                            "--force", "--profile", profile, "--weights-mode", "stand-in",
                            "--concurrency", str(concurrency)],
                           env=bench.grader_env(profile), cwd=bench.root)
    load = sampler.stop()
    scores, notebook_s = {}, {}
    for student in students:
        results = out / student / "results.json"
        if not results.is_file():
            raise SystemExit(f"course grade wrote no results for {student}:\n{log}")
        data = json.loads(results.read_text())
        scores[student] = data["score"]
        notebook_s[student] = data["execution_time"]
    return Arm(tool=f"course grade (concurrency {concurrency})", wall_s=round(wall, 1), cpu_s=round(cpu),
               per_minute=round(len(students) / wall * 60, 2), scores=scores,
               notebook_s=notebook_s, load=load)


def render(rounds: list[list[Arm]], summary: dict[str, Any]) -> str:
    lines = [
        f"profile **{summary['profile']}**, stand-in weights, {summary['count']} submissions, "
        f"{len(rounds)} round(s), course grade concurrency {summary['concurrency']}, "
        f"{summary['finished_utc']}",
        "",
        "| round | tool (in run order) | wall | submissions / min | CPU-s | load 1-min min–median–max |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for n, arms in enumerate(rounds, 1):
        for arm in arms:
            lines.append(f"| {n} | {arm.tool} | {arm.wall_s:.1f} s | {arm.per_minute:.2f} | "
                         f"{arm.cpu_s} | {arm.load['min']:.1f}–{arm.load['median']:.1f}–{arm.load['max']:.1f} |")
    lines += ["", "throughput ratio course grade / nbgrader, median of the per-round ratios: "
              f"**{summary['ratio_equal']:.2f}** at equal concurrency (1), "
              f"**{summary['ratio']:.2f}** at concurrency {summary['concurrency']} "
              f"(goal ≥ 1.3: {'met' if summary['ratio'] >= 1.3 else 'missed'})", "",
              "| student | nbgrader score | course grade score |", "|---|---:|---:|"]
    for student, (theirs, ours) in summary["scores"].items():
        flag = "" if theirs == ours else " (differs)"
        lines.append(f"| {student} | {theirs:g} | {ours:g}{flag} |")
    return "\n".join(lines)


def round_ratio(arms: list[Arm], tool: str) -> float:
    """``tool``'s throughput over nbgrader's, within one round."""
    base = next(a for a in arms if a.tool == "nbgrader autograde")
    return next(a for a in arms if a.tool == tool).per_minute / base.per_minute


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("full", "reduced"), default="reduced")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=10, help="number of submissions")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway folders")
    args = parser.parse_args(argv)

    bench = make_root("bench-grade-nbgrader-")
    try:
        submissions = make_submissions(bench, args.count)
        students = sorted(submissions)
        course = make_nbgrader_course(bench, submissions, args.profile)
        prepared = prepare(bench, args.profile)
        print(f"prepared: {prepared}", flush=True)
        from autograder.course.config import load_course

        concurrency = load_course(bench.root).config.grading.concurrency
        rounds: list[list[Arm]] = []
        for n in range(args.rounds):
            order: list = ["nbgrader", *dict.fromkeys((1, concurrency))]
            if n % 2:
                order.reverse()
            arms = []
            for tool in order:
                print(f"round {n + 1}/{args.rounds}: {tool} ...", flush=True)
                if tool == "nbgrader":
                    arm = run_nbgrader(bench, course, students, args.profile)
                else:
                    arm = run_course_grade(bench, bench.root / "submissions", students,
                                           args.profile, concurrency=tool)
                print(json.dumps(asdict(arm)), flush=True)
                arms.append(arm)
            rounds.append(arms)

        def per_minute(tool: str) -> float:
            return statistics.median(a.per_minute for arms in rounds for a in arms if a.tool == tool)

        equal, best = "course grade (concurrency 1)", f"course grade (concurrency {concurrency})"
        last = rounds[-1]
        theirs = next(a for a in last if a.tool == "nbgrader autograde").scores
        ours = next(a for a in last if a.tool == best).scores

        summary = {
            "profile": args.profile, "count": args.count, "rounds": args.rounds,
            "concurrency": concurrency, "commit": bench.commit, "prepared": prepared,
            "nbgrader_per_minute": per_minute("nbgrader autograde"),
            "course_per_minute": per_minute(best),
            "course_equal_per_minute": per_minute(equal),
            "scores": {s: (theirs[s], ours[s]) for s in students},
            "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
        }
        summary["ratio"] = round(statistics.median(round_ratio(arms, best) for arms in rounds), 3)
        summary["ratio_equal"] = round(statistics.median(round_ratio(arms, equal) for arms in rounds), 3)
        out = REPO / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"grade_vs_nbgrader-{args.profile}.json").write_text(json.dumps(
            {"summary": summary, "rounds": [[asdict(a) for a in arms] for arms in rounds]},
            indent=2) + "\n")
        print(render(rounds, summary))
        return 0
    finally:
        if args.keep:
            print(f"kept {bench.root}")
        else:
            shutil.rmtree(bench.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
