"""A progress callback that library code can call without printing anything itself.

Library functions take ``progress: Progress | None``; the CLI passes one that
draws a rich progress bar, tests pass nothing or a list-appending function.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int, what: str) -> None:
        """Report that ``done`` of ``total`` steps are finished; ``what`` names the last one."""


def report(progress: Progress | None, done: int, total: int, what: str) -> None:
    if progress is not None:
        progress(done, total, what)
