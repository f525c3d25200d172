"""``course demo``: the whole loop on the embedded defaults, one subcommand after another.

Build and verify the dataset, check the release, set up the sandbox, calibrate the
answer key (once), grade the reference solution and a few sample submissions of the first
assignment, the reference and an unanswered notebook of every other one (all into the
demo's own gradebook), start the local hub and hand every assignment out on it, and
print where the feedback pages are. Each step is the same
subcommand an instructor would type, so the demo doubles as a walkthrough.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
from collections.abc import Callable

from autograder.commands.ui import console
from autograder.course.config import GRADEBOOK_FILE, active_profile_name, load_course

DEMO_SAMPLES = ["reference", "wrong_params", "unfrozen_backbone", "wider_head"]
BROKEN_NOTEBOOK = '{"cells": [ {"cell_type": "code", "source": "print(1)"'  # cut mid-file


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the whole loop on the embedded defaults",
                          description="Build the data, check the release, calibrate, grade the "
                                      "reference and sample submissions, print the gradebook.")
    demo.add_argument("--profile", help="full (default) or reduced (a quick look)")
    demo.add_argument("--no-hub", action="store_true", help="do not start the local JupyterHub")
    demo.set_defaults(func=run_demo)


def _step(title: str, argv: list[str], *, course_main: Callable[[list[str]], int]) -> None:
    console.rule(f"[bold]{title}[/]  [dim]course {' '.join(argv)}[/]")
    code = course_main(argv)
    if code:
        raise SystemExit(code)


def _grade_other(assignment, *, step: Callable[..., None], course, profile: str, gradebook) -> None:
    """Any further assignment: calibrate its key when stale, then grade its reference solution
    and the untouched release notebook (a student who answered nothing) into the same gradebook."""
    from autograder.course.samples import write_samples
    from autograder.grading.pipeline import make_context

    aid = assignment.assignment_id
    ctx = make_context(course, aid, profile_name=profile, out_dir=course.autograded_dir, need_key=False)
    weights = ["--weights-mode", ctx.weights_mode] if assignment.uses_backbone else []
    if not ctx.key_is_current():
        step(f"7. calibrate {aid}'s answer key", ["calibrate", aid, "--profile", profile, *weights])
    submissions = course.demo_dir / "submissions" / aid
    shutil.rmtree(submissions, ignore_errors=True)  # only what this run wrote is graded
    write_samples(course.source_dir(aid) / assignment.notebook, submissions, names=["reference"])
    unanswered = submissions / "unanswered" / assignment.notebook
    unanswered.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(course.release_dir(aid) / assignment.notebook, unanswered)
    step(f"7. grade {aid}: the reference solution and an unanswered notebook",
         ["grade", aid, str(submissions), "--out", str(course.autograded_dir / "demo" / aid),
          "--gradebook", str(gradebook), "--profile", profile, *weights, "--force"])


def run_demo(args: argparse.Namespace) -> int:
    """Each step through ``args.course_main``: the same entry point the demo was started
    from (the CLI passes its ``main``; importing it here would close an import circle)."""
    from autograder.course.datasets import verify_dataset
    from autograder.course.samples import write_samples
    from autograder.course.weights import weights_status
    from autograder.errors import DatasetError
    from autograder.grading.pipeline import make_context

    step = functools.partial(_step, course_main=args.course_main)
    course = load_course()
    assignment = course.config.assignments[0]  # the samples below are cnn_transfer's
    aid = assignment.assignment_id
    profile = args.profile or active_profile_name(course.config)

    step("1. check the configuration", ["config", "check"])
    try:
        verify_dataset(course)
    except DatasetError:
        step("2. build the offline dataset", ["data", "build"])
    step("2. verify the dataset against its manifest", ["data", "verify"])
    for other in course.config.assignments:  # every assignment's release, the demo's first
        step(f"3. check that release/{other.assignment_id} matches source/",
             ["release", other.assignment_id, "--check"])
    if os.geteuid() == 0:
        step("4. set up the sandbox users", ["sandbox", "setup"])
    status = weights_status(course)
    mode = "imagenet" if status.md5_state == "ok" and status.mode == "imagenet" else "stand-in"
    if mode == "stand-in":
        console.print("[yellow]ResNet50 ImageNet weights are not in the cache "
                      f"({status.path}); the demo uses STAND-IN weights (untrained). "
                      "Transfer-learning numbers below are not ImageNet results. Seed the cache "
                      "with `course weights import FILE` for the real thing.[/]")
    ctx = make_context(course, aid, profile_name=profile, out_dir=course.autograded_dir,
                       weights_mode=mode, need_key=False)
    if not ctx.key_is_current():
        step("5. calibrate the answer key from the reference solution",
              ["calibrate", aid, "--profile", profile, "--weights-mode", mode])
    else:
        console.rule(f"[bold]5. answer key[/]  [dim]{ctx.key_file} (current; "
                     f"`course calibrate` redoes it)[/]")
    submissions = course.demo_dir / "submissions" / aid  # one folder of students per assignment
    shutil.rmtree(submissions, ignore_errors=True)
    write_samples(course.source_dir(aid) / assignment.notebook, submissions, names=DEMO_SAMPLES)
    broken = submissions / "broken_file" / assignment.notebook
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text(BROKEN_NOTEBOOK)
    out = course.autograded_dir / "demo" / aid
    gradebook = course.demo_dir / GRADEBOOK_FILE  # not the course's
    step("6. grade the reference solution and sample submissions",
          ["grade", aid, str(submissions), "--out", str(out), "--gradebook", str(gradebook),
           "--profile", profile, "--weights-mode", mode,
           "--force"])  # a demo always shows a fresh grading
    for other in course.config.assignments[1:]:
        _grade_other(other, step=step, course=course, profile=profile, gradebook=gradebook)
    if not args.no_hub and os.geteuid() == 0:
        step("8. start the local JupyterHub", ["hub", "up"])
        for a in course.config.assignments:  # what a student who logs in can fetch
            step(f"9. hand out {a.assignment_id} on the hub", ["hub", "release", a.assignment_id])
    console.print(f"\nFeedback pages: {course.autograded_dir / 'demo'}/<assignment>/<student>/feedback.html; "
                  f"grades.csv next to them; the demo's own gradebook (every assignment): {gradebook}")
    return 0
