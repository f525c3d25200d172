"""``course new <assignment>``: scaffold a source notebook, rubric and config entry."""

from __future__ import annotations

import argparse

from autograder.commands.ui import console
from autograder.course.config import load_course
from autograder.course.scaffold import scaffold_assignment


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "new", help="scaffold a new assignment (source notebook, rubric, config entry)",
        description="Write source/<id>/<id>.ipynb with one example question, its rubric test "
                    "and an Assignment entry in course_config.py; it releases and grades as is.")
    parser.add_argument("assignment", help="the new assignment's id (lower-case, digits, _)")
    parser.set_defaults(func=run_new)


def run_new(args: argparse.Namespace) -> int:
    report = scaffold_assignment(load_course(), args.assignment)
    for path in report.files:
        console.print(f"wrote {path}")
    aid = report.assignment_id
    console.print(f"next: edit the notebook, then `course release {aid}`, "
                  f"`course calibrate {aid}` and `course grade {aid} SUBMISSIONS`")
    return 0
