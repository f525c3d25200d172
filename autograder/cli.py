"""The ``course`` command: the one entry point, and the only place that prints and exits.

Each subcommand lives in :mod:`autograder.commands` and registers itself here.
``main(argv)`` is testable; errors of the kit become one line, a hint and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from autograder.commands import ALL_COMMANDS
from autograder.errors import CourseError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Release, grade and host the course's deep-learning assignment.",
    )
    parser.add_argument("--version", action="version", version=f"course {kit_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in ALL_COMMANDS:
        module.register(sub)
    _describe(parser)
    return parser


def kit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("course-autograder")
    except PackageNotFoundError:
        return "unknown (not installed; run scripts/bootstrap.sh)"


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand's own --help the one-line help its parent lists, so that
    `course hub up --help` is never empty."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if not child.description and helps.get(name):
                    child.description = helps[name][:1].upper() + helps[name][1:] + "."
                _describe(child)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Options anywhere: `course grade cnn_transfer --force subs/` works like the options
    last. (argparse's parse_intermixed_args refuses subparsers, so a subcommand names the
    list that takes leftover positionals with ``set_defaults(intermixed=...)``.)"""
    args, extras = parser.parse_known_args(argv)
    target = getattr(args, "intermixed", None)
    if extras:
        if target is None or any(e.startswith("-") for e in extras):
            parser.error("unrecognized arguments: " + " ".join(extras))
        setattr(args, target, [*getattr(args, target), *map(type_of(parser, args, target), extras)])
    return args


def type_of(parser: argparse.ArgumentParser, args: argparse.Namespace, dest: str):
    """The ``type=`` of the positional ``dest`` of the chosen subcommand (str if none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                found = type_of(chosen, args, dest)
                if found is not str:
                    return found
        elif action.dest == dest and action.type is not None:
            return action.type
    return str


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ start-up lines (absl's "WARNING: All log messages before
    # absl::InitializeLog() ...", cpu_feature_guard's notice) reached the demo's console from
    # the commands that build stand-in weights or run the reference in process; errors still
    # print. A value the user set is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parse_args(parser, argv)
    args.course_main = main  # for commands that run other commands (the demo)
    try:
        return int(args.func(args) or 0)
    except CourseError as exc:
        print(f"course {args.command}: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return getattr(exc, "EXIT_STATUS", 2)  # 2: bad input; GraderUnavailable: try again
    except KeyboardInterrupt:
        print(f"course {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
