"""``course config check``: validate course_config.py and every cross-reference."""

from __future__ import annotations

import argparse

from autograder.commands.ui import console
from autograder.course.config import load_course, require_valid
from autograder.course.consistency import course_problems
from autograder.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="inspect and validate course_config.py")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    check = verbs.add_parser("check", help="validate every field and cross-reference")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    course = load_course()
    require_valid(course)
    disagreements = course_problems(course)
    if disagreements:
        raise ConfigError(
            f"the source notebook's autograded cells and the rubric disagree "
            f"({len(disagreements)} problem(s)):\n  " + "\n  ".join(disagreements),
            hint="an item counts only when an autograded cell (grade_id, positive points) "
                 "and a rubric test_<grade_id> both name it; points live in the cell only")
    c = course.config
    console.print(
        f"course_config.py is valid: course {c.course_id}, "
        f"{len(c.assignments)} assignment(s): "
        + ", ".join(f"{a.assignment_id} ({len(a.points)} items, {sum(a.points.values()):g} points)"
                    for a in c.assignments))
    return 0
