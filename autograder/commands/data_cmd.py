"""``course data build`` and ``course data verify``: the image folders and their manifest."""

from __future__ import annotations

import argparse

from autograder.commands.ui import console, progress_bar
from autograder.course.config import Course, check_config, load_course
from autograder.course.datasets import (
    DatasetReport,
    build_dataset,
    grading_split_dir,
    student_splits_dir,
    verify_dataset,
)
from autograder.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="build and verify the image dataset",
                            description="Build and verify the shoes/handbags image folders.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    build = verbs.add_parser(
        "build", help="generate the default dataset (or validate a real folder) and write the manifest",
        description="Generate every image of dataset.source = \"generated\" (offline, "
                    "deterministic) or validate a real image folder, then write dataset.manifest.")
    build.set_defaults(func=run_build)
    verify = verbs.add_parser(
        "verify", help="check every image against the manifest",
        description="Name every file that is missing, changed or extra compared with "
                    "dataset.manifest; exit 2 if there is any.")
    verify.set_defaults(func=run_verify)


def _load() -> Course:
    # Only the dataset fields matter here: a missing notebook must not block building data.
    course = load_course()
    problems = check_config(course, sections=("dataset",))
    if problems:
        raise ConfigError("course_config.py: " + "; ".join(problems),
                          hint="fix the dataset field named above")
    return course


def _summary(course: Course, result: DatasetReport) -> str:
    per_split = ", ".join(f"{split} {sum(c.values())}" for split, c in result.counts.items())
    return (f"{result.total} images ({per_split}); student splits in {student_splits_dir(course)}, "
            f"grading split in {grading_split_dir(course)}; manifest {result.manifest}")


def run_build(args: argparse.Namespace) -> int:
    course = _load()
    with progress_bar("dataset") as progress:
        result = build_dataset(course, progress=progress)
    console.print(f"built {_summary(course, result)}")
    if result.removed:
        console.print(f"removed {len(result.removed)} stale file(s): {', '.join(result.removed)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    course = _load()
    result = verify_dataset(course)
    console.print(f"dataset matches its manifest: {_summary(course, result)}")
    return 0
