"""``course grade`` and ``course calibrate``: the autograder's two verbs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.table import Table
from rich.text import Text

from autograder.commands.ui import console, progress_bar
from autograder.course.config import active_profile_name, load_course
from autograder.errors import GraderUnavailable, GradingError


def register(sub: argparse._SubParsersAction) -> None:
    grade = sub.add_parser(
        "grade", help="grade submissions in a sandbox and write results, feedback and grades.csv",
        description="Grade one notebook, a folder of <student>/<notebook>.ipynb, or nbgrader's "
                    "submitted/ tree (the default).")
    grade.add_argument("assignment", help="assignment id from course_config.py")
    grade.add_argument("submissions", nargs="*", type=Path,
                       help="notebook files or folders (default: submitted/ in the course root)")
    grade.add_argument("--out", type=Path, default=None,
                       help="output folder (default: grading.out_dir from course_config.py)")
    grade.add_argument("--force", action="store_true", help="re-grade submissions already graded")
    grade.add_argument("--student", help="student id, when grading a single notebook file")
    grade.add_argument("--gradebook", type=Path, default=None,
                       help="nbgrader gradebook to record scores in (default: gradebook.db "
                            "in the course root)")
    grade.add_argument("--concurrency", type=_positive_int, default=None,
                       help="submissions graded at once (default: grading.concurrency from "
                            "course_config.py); each takes a sandbox slot")
    profile_options(grade)
    grade.set_defaults(func=run_grade, intermixed="submissions")

    cal = sub.add_parser("calibrate", help="run the reference solution and write the answer key")
    cal.add_argument("assignment", help="assignment id from course_config.py")
    cal.add_argument("--seeds", type=lambda s: tuple(int(x) for x in s.split(",")), default=None,
                     help="comma-separated seeds (default: the assignment's calibration_seeds)")
    profile_options(cal)
    cal.set_defaults(func=run_calibrate)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of slots")
    return value


def profile_options(parser: argparse.ArgumentParser) -> None:
    """``--profile`` and ``--weights-mode``, as every command that grades takes them."""
    parser.add_argument("--profile", help="full or reduced (default: $COURSE_PROFILE or the config)")
    parser.add_argument("--weights-mode", choices=("imagenet", "stand-in"),
                        help="ResNet50 weights (default: $COURSE_WEIGHTS_MODE or the config)")


def run_grade(args: argparse.Namespace) -> int:
    from autograder.grading.jobs import GradeJob, discover, run_batch, valid_student_id
    from autograder.grading.pipeline import make_context
    from autograder.grading.score import printable

    course = load_course()
    assignment = course.config.assignment(args.assignment)
    # The user's own input first: a missing file is named before any course-side problem.
    paths = args.submissions or [course.submitted_dir]
    if args.student:
        if len(paths) != 1 or not paths[0].is_file():
            raise GradingError("--student needs exactly one notebook file",
                               hint="drop --student to grade a folder")
        if not valid_student_id(args.student):
            raise GradingError(f"--student {printable(args.student)!r} cannot name a student",
                               hint="use a printable id without '/', not starting with '.'")
        jobs = [GradeJob(student=args.student, notebook=paths[0].resolve())]
    else:
        jobs = discover(paths, notebook=assignment.notebook, assignment_id=args.assignment)
    out = args.out or course.autograded_dir
    if args.concurrency:
        if args.concurrency > course.config.grading.concurrency:
            raise GradingError(
                f"--concurrency {args.concurrency} is more than the "
                f"{course.config.grading.concurrency} sandbox slots this course has",
                hint="raise grading.concurrency in course_config.py, then run "
                     "`course sandbox setup`")
        course = dataclasses.replace(course, config=dataclasses.replace(
            course.config, grading=dataclasses.replace(course.config.grading,
                                                       concurrency=args.concurrency)))
    grading = course.config.grading
    remote = grading.executor == "dask" and bool(grading.dask_scheduler)  # holds no secret then
    ctx = make_context(course, args.assignment, profile_name=args.profile or active_profile_name(course.config),
                       out_dir=out, weights_mode=args.weights_mode, gradebook=args.gradebook,
                       grader_material=not remote)
    with progress_bar(f"grading {args.assignment}") as bar:
        outcome = run_batch(ctx, jobs, force=args.force, progress=bar)
    show_batch(outcome, ctx)
    if outcome.unavailable:  # the cluster, not the submissions: the caller should retry
        return GraderUnavailable.EXIT_STATUS
    return failed_exit_status(len(outcome.failed))


def failed_exit_status(failed: int) -> int:
    """How many submissions failed to grade (0 when every one got its result), capped at
    64 ("64 or more"): above it sit :attr:`GraderUnavailable.EXIT_STATUS` (75: the grading
    cluster was unreachable, try again) and the values a shell reserves for signals."""
    return min(failed, 64)


def show_batch(outcome, ctx) -> None:
    import json

    table = Table(title=f"{ctx.assignment.assignment_id}: gradebook ({ctx.setting()})")
    for col in ("student", "score", "kernel", "feedback"):
        table.add_column(col)
    from autograder.grading.score import printable

    for results in sorted(ctx.out_dir.glob("*/results.json")):
        data = json.loads(results.read_text())
        table.add_row(*(Text(printable(str(cell))) for cell in (  # Text: never read as markup
            results.parent.name, f"{data['score']:g} / {data['max_score']:g}",
            data.get("extra_data", {}).get("kernel_status", ""), results.parent / "feedback.html")))
    console.print(table)
    if ctx.weights_mode == "stand-in":
        console.print("[yellow]Stand-in ResNet50 weights (untrained): transfer-learning numbers "
                      "are not ImageNet results.[/]")
    if outcome.skipped:
        console.print(f"skipped (already graded; --force to redo): "
                      f"{printable(', '.join(outcome.skipped))}", markup=False)
    for student, error in outcome.failed.items():
        console.print(f"grader error for {printable(student)} (no grade recorded; re-run "
                      f"retries it): {printable(error)}", style="red", markup=False)
    console.print(f"grades: {outcome.grades_csv}")


def run_calibrate(args: argparse.Namespace) -> int:
    from autograder.grading.calibrate import calibrate, calibration_seeds, few_runs_warning
    from autograder.grading.pipeline import make_context

    course = load_course()
    assignment = course.config.assignment(args.assignment)
    ctx = make_context(course, args.assignment, profile_name=args.profile or active_profile_name(course.config),
                       out_dir=course.autograded_dir,
                       weights_mode=args.weights_mode, need_key=False)
    seeds = args.seeds or calibration_seeds(course.config.grading.seed, assignment.calibration_seeds)
    with progress_bar(f"calibrating {args.assignment}") as bar:
        key = calibrate(ctx, seeds=seeds, progress=bar)
    if not key["accuracy"]:  # an assignment that measures no accuracy (param_counting)
        console.print(f"answer key: {ctx.key_file}: {len(key['answers'])} answers and "
                      f"{len(key['models'])} models from {len(seeds)} reference run(s); "
                      "no accuracy item")
        return 0
    table = Table(title=f"answer key: {ctx.key_file}")
    for col in ("model", "accuracy per seed", "threshold", "headroom", "assessed"):
        table.add_column(col)
    for model, accs in key["accuracy"].items():
        table.add_row(model, ", ".join(f"{a:.2f}" for a in accs), f"{key['thresholds'][model]:.2f}",
                      f"{key['headroom'][model]:+.2f}",
                      "no" if model in key["not_assessable"] else "yes")
    console.print(table)
    for model, why in key["not_assessable"].items():
        console.print(f"[yellow]{model}'s accuracy item is not assessed in this mode: {why}. It "
                      f"is left out of the maximum score and labelled in the feedback; the full "
                      f"profile with ImageNet weights should make it assessable.[/]")
    few = few_runs_warning(key)
    if few:
        console.print(f"[yellow]warning: {few}[/]")
    return 0
