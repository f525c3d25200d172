"""Code the grader runs inside the student's kernel, kept as real modules.

The grader never imports these files: :func:`source` reads one as text and the grader
sends that text to the kernel as a silent ``execute_request`` (the kernel cannot import
from the grader's package, and must not). Each file defines one entry function with a
``__grader_`` name, which the sending code calls: ``seed.py`` runs in the student's namespace
and is deleted after, so it is that one function alone; ``export.py`` is exec'd in a namespace
of its own, so it has small helpers beside it. Comments, never a module docstring: the
kernel would keep that as the student's ``__doc__``.
"""

from __future__ import annotations

from pathlib import Path


def source(name: str) -> str:
    """The text of ``inkernel/<name>``."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")
