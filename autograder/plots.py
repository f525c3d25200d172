"""Plots as inline SVG, drawn by matplotlib: one way for the feedback page and the class view.

Headless (Agg), text kept as text (``svg.fonttype = none``), no date or creator in the file,
and each figure's element ids salted by the caller so that several SVGs on one page never
share an id. Only the ``<svg>`` element is returned, ready to be placed in a page.
"""

from __future__ import annotations

import io
from typing import Any


_preloading: list[Any] = []


def preload() -> None:
    """Import matplotlib and lay out one figure on a thread of its own, once per process: the
    grader calls this while a notebook runs, so the reports after it do not wait the 0.3 s."""
    import threading

    def load() -> None:
        figure(1, 1).add_subplot().set_title("warm")

    if not _preloading:
        _preloading.append(threading.Thread(target=load, name="preload-plots", daemon=True))
        _preloading[0].start()


def figure(width: float, height: float) -> Any:
    """A matplotlib Figure of ``width`` x ``height`` inches, laid out with constrained layout."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def inline_svg(fig: Any, salt: str, rc: dict[str, Any] | None = None) -> str:
    """``fig`` as an ``<svg>`` element; ``rc`` are the style settings the figure was drawn
    with (tick labels are made while saving, so they must hold then too)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({**(rc or {}), "svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]
