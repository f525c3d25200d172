"""``course sandbox setup|check``: create the grading slots' users and check every part.

Root only; the grader refuses to run student code without these parts unless
``grading.allow_unsandboxed`` is set (never for real students).
"""

from __future__ import annotations

import argparse

from autograder.commands.ui import console
from autograder.course.config import load_course
from autograder.errors import SandboxUnavailable
from autograder.grading import sandbox, sandbox_users


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sandbox", help="set up and check the grading sandbox (root)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    setup = verbs.add_parser("setup", help="create one unprivileged user per grading slot")
    setup.set_defaults(func=run_setup)
    check = verbs.add_parser("check", help="list missing sandbox parts (bwrap, uids, cgroups)")
    check.set_defaults(func=run_check)


def run_setup(args: argparse.Namespace) -> int:
    from autograder.course.permissions import GRADER_GROUP, protect_course_files

    course = load_course()
    grading = course.config.grading
    users = sandbox_users.ensure_sandbox_users(grading.sandbox_user_prefix, grading.concurrency)
    for user in users:
        console.print(f"sandbox user {user.name}: uid {user.uid}, gid {user.gid}")
    protect_course_files(course)
    console.print(f"course secrets closed to other users; the checker reads them as group "
                  f"{GRADER_GROUP}")
    return run_check(args)


def run_check(args: argparse.Namespace) -> int:
    grading = load_course().config.grading
    missing = sandbox.probe_sandbox(prefix=grading.sandbox_user_prefix,
                                    slots=grading.concurrency)
    if missing:
        raise SandboxUnavailable(
            "the grading sandbox is incomplete:\n  " + "\n  ".join(missing),
            hint="run `course sandbox setup` as root and install what is named above",
        )
    console.print(f"sandbox ready: {grading.concurrency} slot(s), bubblewrap, "
                  f"cgroup v{sandbox.cgroup_version()}, unprivileged uids")
    return 0
