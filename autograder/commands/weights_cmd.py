"""``course weights import FILE | fetch | status``: seed and inspect the read-only weights cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.commands.ui import console, progress_bar
from autograder.course.config import load_course
from autograder.course.weights import (
    MD5_OK,
    fetch_weights,
    import_weights,
    weights_status,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("weights", help="seed and inspect the ResNet50 weights cache")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    imp = verbs.add_parser("import", help="verify a local copy of the Keras file and install it")
    imp.add_argument("file", type=Path, help="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    imp.set_defaults(func=run_import)
    fetch = verbs.add_parser("fetch", help="download weights.url (needs internet), verify, install")
    fetch.set_defaults(func=run_fetch)
    status = verbs.add_parser("status", help="say what the cache holds")
    status.set_defaults(func=run_status)


def run_import(args: argparse.Namespace) -> int:
    path = import_weights(load_course(), args.file)
    console.print(f"installed {path} (md5 verified, read-only)")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    course = load_course()
    with progress_bar("weights") as progress:
        path = fetch_weights(course, progress=progress)
    console.print(f"installed {path} (md5 verified, read-only)")
    return 0


def run_status(args: argparse.Namespace) -> int:
    s = weights_status(load_course())
    mode = f"{s.file_mode:o}" if s.file_mode is not None else "-"
    console.print(f"path:  {s.path}")
    console.print(f"mode:  {s.mode} (weights)")
    console.print(f"md5:   {s.md5_state}" + (f" ({s.md5_found})" if s.md5_found else ""))
    console.print(f"file:  permissions {mode}, {s.size_bytes or 0} bytes")
    # Non-zero when a grading run would fail, so scripts can test the cache.
    return 0 if s.md5_state == MD5_OK or s.mode == "stand-in" else 1
