"""Console helpers shared by the subcommands: a progress bar and tables (rich)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autograder.grading.score import printable

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(title: str) -> Iterator:
    """Yield a ``Progress``-protocol callback: a rich bar on a terminal, and plain lines
    (``title: done/total what``) anywhere else, so CI logs and the hub's service log show
    how a batch goes."""
    if not err_console.is_terminal:
        def line(done: int, total: int, what: str) -> None:
            suffix = f" {printable(what)}" if what else ""
            print(f"{title}: {done}/{total}{suffix}", file=sys.stderr, flush=True)

        yield line
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[what]}", markup=False),  # student ids are not markup
        console=err_console,
    )
    task = bar.add_task(title, total=None, what="")
    with bar:
        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, what=printable(what))

        yield update
