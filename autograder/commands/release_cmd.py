"""``course release <assignment> [--check]``: build release/<id>/ from the source notebook."""

from __future__ import annotations

import argparse

from autograder.commands.ui import console
from autograder.course.config import load_course
from autograder.course.release import check_release, release_assignment
from autograder.errors import ReleaseError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("release", help="generate the student version with nbgrader")
    parser.add_argument("assignment", help="assignment id from course_config.py")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and fail if release/ is stale")
    parser.set_defaults(func=run_release)


def run_release(args: argparse.Namespace) -> int:
    course = load_course()
    if args.check:
        report = check_release(course, args.assignment)
        if report.stale:
            listing = "\n  ".join(report.stale)
            raise ReleaseError(
                f"release/{args.assignment} is stale ({len(report.stale)} file(s)):\n  {listing}",
                hint=f"run `course release {args.assignment}` and commit the result",
            )
        console.print(f"release/{args.assignment} is up to date ({len(report.files)} files)")
        return 0
    report = release_assignment(course, args.assignment)
    console.print(f"wrote {report.release_dir} ({len(report.files)} files)")
    return 0
