"""``course export gradescope``: the assignment as a Gradescope autograder zip."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.commands.grade_cmd import profile_options
from autograder.commands.ui import console
from autograder.course.config import active_profile_name, load_course


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="package an assignment for another grading platform",
                            description="Package an assignment for another grading platform.")
    verbs = parser.add_subparsers(dest="verb", metavar="PLATFORM", required=True)
    gs = verbs.add_parser(
        "gradescope", help="write a Gradescope autograder zip (setup.sh, run_autograder, the kit)",
        description="Write the zip Gradescope's autograder runs: the same sandboxed grader and "
                    "rubric, the hidden split and the current answer key for one profile and "
                    "weights mode. It holds secrets: upload it to Gradescope only.")
    gs.add_argument("assignment", help="assignment id from course_config.py")
    gs.add_argument("--out", type=Path, default=None,
                    help="zip to write (default: <assignment>-gradescope.zip in the course root)")
    profile_options(gs)
    gs.set_defaults(func=run_gradescope)


def run_gradescope(args: argparse.Namespace) -> int:
    from autograder.grading.gradescope import build_package
    from autograder.grading.pipeline import make_context

    course = load_course()
    profile = args.profile or active_profile_name(course.config)
    out = (args.out or course.root / f"{args.assignment}-gradescope.zip").resolve()
    # The same checks as a batch: a current key for this profile and weights mode, the data.
    ctx = make_context(course, args.assignment, profile_name=profile, out_dir=out.parent,
                       weights_mode=args.weights_mode)
    build_package(course, args.assignment, profile=profile, weights_mode=ctx.weights_mode,
                  key_file=ctx.key_file,
                  weights_file=ctx.weights_file if ctx.weights_mode == "imagenet" else None,
                  out=out)
    out.chmod(0o600)  # hidden split and answer key inside
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; {ctx.setting()}). It holds the hidden split and the answer key: "
                  "upload it to Gradescope only.")
    return 0
