"""``course dask certs DIR``: the grading cluster's TLS set (``autograder.grading.dask_tls``).

The scheduler, every worker and the grading service's client present the same certificate,
signed by a CA made for the course, and refuse any peer without one."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.commands.ui import console
from autograder.grading import dask_tls


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dask", help="the Dask grading cluster's TLS certificates")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    certs = verbs.add_parser("certs", help="make a CA and the one certificate every peer presents")
    certs.add_argument("folder", type=Path, help="where to write ca.pem, node.pem, node-key.pem")
    certs.add_argument("--host", action="append", default=[],
                       help="a name or address of the scheduler to put in the certificate "
                            "(repeatable; Dask itself checks only the CA)")
    certs.add_argument("--days", type=int, default=365, help="validity (default 365)")
    certs.set_defaults(func=run_certs)


def run_certs(args: argparse.Namespace) -> int:
    files = dask_tls.make_certs(args.folder, hosts=tuple(args.host), days=args.days)
    for path in files.values():
        console.print(f"wrote {path}", soft_wrap=True)
    flags = " ".join(dask_tls.cli_args(args.folder.resolve()))
    console.print(f"scheduler: dask scheduler --protocol tls {flags}\n"
                  f"workers:   dask worker tls://HOST:8786 {flags} ...\n"
                  f"course_config.py: grading.dask_tls_dir = {str(args.folder.resolve())!r}, "
                  "grading.dask_scheduler = 'tls://HOST:8786'", soft_wrap=True)
    return 0
