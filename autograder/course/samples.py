"""Sample submissions derived from the source notebook, for the demo and the test zoo.

Each sample is the reference solution with one deliberate change to the cell that
nbgrader's ``grade_id`` names, so the samples follow the source notebook when an
instructor edits it (a renamed or missing cell is a typed error, never a silent
no-op). Hidden test regions are removed, as in a student's copy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import nbformat

from autograder.errors import ReleaseError

_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)


def reference_submission(source: Path) -> nbformat.NotebookNode:
    """The source notebook as a student who solved everything would hand it in."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _HIDDEN.sub("", cell.source).rstrip() + "\n"
            cell.outputs = []
            cell.execution_count = None
    return nb


def _cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise ReleaseError(f"the source notebook has no cell with grade_id {grade_id!r}",
                       hint="update autograder/course/samples.py to the notebook's new cell ids")


def _replace(nb: nbformat.NotebookNode, grade_id: str, old: str, new: str) -> None:
    cell = _cell(nb, grade_id)
    if old not in cell.source:
        raise ReleaseError(f"cell {grade_id!r} no longer contains {old!r}",
                           hint="update autograder/course/samples.py to the notebook's new solution")
    cell.source = cell.source.replace(old, new)


def insert_cell_after(nb: nbformat.NotebookNode, grade_id: str, source: str) -> None:
    """Add a code cell right after the cell with ``grade_id`` (for hostile test submissions)."""
    index = nb.cells.index(_cell(nb, grade_id))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))


def wrong_params(nb: nbformat.NotebookNode) -> None:
    """Forgets the biases in the parameter count (and so mispredicts the frozen counts)."""
    _replace(nb, "a_conv_params", "(2 * 2 * 3 + 1) * 32", "2 * 2 * 3 * 32")
    _replace(nb, "a_conv_params", "(2 * 2 * 32 + 1) * 32", "2 * 2 * 32 * 32")


def unfrozen_backbone(nb: nbformat.NotebookNode) -> None:
    """Leaves the whole ResNet50 trainable in ft_model."""
    _replace(nb, "a_finetune_model", "for layer in backbone.layers[:-10]:\n    layer.trainable = False",
             "pass  # (forgot to freeze the early layers)")


def wider_head_variant(nb: nbformat.NotebookNode) -> None:
    """A different but valid CNN: a wider hidden layer and dropout after Flatten."""
    _replace(nb, "a_cnn_architecture", "x = layers.Flatten()(x)\n",
             "x = layers.Flatten()(x)\nx = layers.Dropout(0.25)(x)\n")
    _replace(nb, "a_cnn_architecture", "layers.Dense(64, activation=\"relu\")",
             "layers.Dense(96, activation=\"relu\")")


FORGERY = '''
# Everything the grader could be fooled by, if it trusted the kernel.
import numpy, numpy.testing, keras
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_equal = lambda *a, **k: None
keras.Model.count_params = lambda self: 416
ip = get_ipython()
ip.input_transformers_post.append(lambda lines: ["pass\\n" if "assert" in l else l for l in lines])
'''


def forger(nb: nbformat.NotebookNode) -> None:
    """Wrong work plus every kernel-side trick that fooled stock nbgrader; and edited metadata."""
    wrong_params(nb)
    unfrozen_backbone(nb)
    nb.cells.append(nbformat.v4.new_code_cell(FORGERY))
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta and meta.get("grade"):
            meta["points"] = 100  # points come from course_config.py, never from the submission
            meta["locked"] = False


SAMPLES: dict[str, Callable[[nbformat.NotebookNode], None] | None] = {
    "reference": None,
    "wrong_params": wrong_params,
    "unfrozen_backbone": unfrozen_backbone,
    "wider_head": wider_head_variant,
}


def write_samples(source: Path, out_dir: Path, *, names: list[str] | None = None,
                  notebook_name: str | None = None) -> dict[str, Path]:
    """Write ``out_dir/<sample>/<notebook>`` for each named sample; returns their paths."""
    written = {}
    extra = {"forger": forger}
    for name in names or list(SAMPLES):
        change = {**SAMPLES, **extra}.get(name, "unknown")
        if change == "unknown":
            raise ReleaseError(f"unknown sample {name!r}",
                               hint=f"use one of: {', '.join([*SAMPLES, *extra])}")
        nb = copy.deepcopy(reference_submission(source))
        if change is not None:
            change(nb)
        path = out_dir / name / (notebook_name or source.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        written[name] = path
    return written
