"""Plots as inline SVG, drawn by matplotlib: one way for the feedback page and the class view.

Headless (Agg), text kept as text (``svg.fonttype = none``), no date or creator in the file,
and each figure's element ids salted by the caller so that several SVGs on one page never
share an id. Only the ``<svg>`` element is returned, ready to be placed in a page.
"""

from __future__ import annotations

import io
from typing import Any


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
