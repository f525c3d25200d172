"""How the notebook names and groups its graded items, for the feedback page.

Read from the release notebook (the instructor's file, never the student's): each
autograded cell's ``grade_id`` gets the part it sits in (the nearest ``## `` heading
above it) and the question it checks (the nearest ``**Question 1b.**`` label above it in
the same part, if any). The feedback page then says "Part 1 — Convolution arithmetic /
Question 1b" where the rubric says ``q1_output_shapes``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

_PART = re.compile(r"^##\s+(?!#)(.+?)\s*#*\s*$", re.M)
_QUESTION = re.compile(r"\*\*(Question\s+[^*]+?)\.?\*\*")


@dataclass(frozen=True)
class ItemLabel:
    part: str
    """The ``## `` heading above the item's cell ("" when there is none)."""
    question: str
    """"Question 1b" when a label precedes the cell in its part, else ""."""
    order: int
    """The cell's index in the notebook (items are listed in notebook order)."""


def item_labels(notebook: Path | None) -> dict[str, ItemLabel]:
    """``grade_id -> ItemLabel`` for every autograded cell; empty when there is no notebook."""
    if notebook is None or not notebook.is_file():
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb = nbformat.read(notebook, as_version=4)
    labels: dict[str, ItemLabel] = {}
    part, question = "", ""
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            parts = _PART.findall(source)
            if parts:
                part, question = parts[-1], ""
            questions = _QUESTION.findall(source)
            if questions:
                question = questions[-1].strip()
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if meta.get("grade") and isinstance(grade_id, str):
            labels[grade_id] = ItemLabel(part=part, question=question, order=index)
    return labels
