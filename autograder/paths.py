"""Where the Python environment running the kit is: one answer for the grader and the hub.

:func:`venv_dir` is the virtual environment running this code — the kit's ``.venv``, which
the grader binds read-only into every sandbox and the hub's servers and service run from.

Outside a venv there is none, and :func:`venv_dir` says so (None) rather than guess: the
grader then binds nothing beyond ``/usr`` (bound whole anyway) and names no extra Python
path to hide from students. The hub cannot do without a folder whose ``bin/`` holds
``jupyterhub``, ``nbgrader`` and the single-user server, so it asks :func:`env_prefix`:
the venv, else the interpreter's own ``sys.prefix`` (where pip put those scripts, as in
the ``python`` Docker image's ``/usr/local``). Before, the grader and the hub each had a
``venv_dir`` and they disagreed outside a venv (None against ``sys.prefix``).
"""

from __future__ import annotations

import sys
from pathlib import Path


def venv_dir() -> Path | None:
    """The virtual environment running this code, or None outside one."""
    return Path(sys.prefix) if sys.prefix != sys.base_prefix else None


def env_prefix() -> Path:
    """The folder whose ``bin/`` and ``share/`` serve this interpreter: the venv, else
    ``sys.prefix``."""
    return venv_dir() or Path(sys.prefix)
