"""The ``course`` command: the one entry point, and the only place that prints and exits.

Each subcommand lives in :mod:`autograder.commands` and registers itself here.
``main(argv)`` is testable; errors of the kit become one line, a hint and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from autograder.commands import ALL_COMMANDS
from autograder.errors import CourseError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Release, grade and host the course's deep-learning assignment.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in ALL_COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CourseError as exc:
        print(f"course {args.command}: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"course {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
