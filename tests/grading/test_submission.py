"""The one reader of a submission: where each name is bound, found once per cell."""

import json
from pathlib import Path

import nbformat
import pytest

from autograder.errors import SubmissionError
from autograder.grading.submission import CellNames, Submission, assigned_names, cell_sources


def test_assigned_names_cover_top_level_bindings():
    """Are plain, annotated, augmented, tuple, for, with, import and def bindings found,
    magics skipped, and names inside functions ignored?"""
    source = ("%matplotlib inline\nx = 1\ny: int = 2\nz += 1\na, (b, *c) = t\n"
              "for i in r: pass\nwith o as w: pass\nimport numpy as np\n"
              "def f():\n    hidden = 1\n!ls\n")
    assert assigned_names(source) == {"x", "y", "z", "a", "b", "c", "i", "w", "np", "f"}
    assert assigned_names("x = (") == set()


@pytest.mark.parametrize("source, why", [
    ("x = 1\x00", "a null byte (ast.parse raises ValueError)"),
    ("x = " + "-" * 100_000 + "1", "unary minus past the parser's depth (MemoryError)"),
    ("x = " + "(" * 300_000 + ")" * 300_000, "brackets past the parser's depth"),
])
def test_code_python_cannot_parse_binds_nothing_and_never_raises(source, why):
    """Does a cell the parser gives up on read as binding nothing (running it fails the same
    way), rather than stopping the grade of the whole notebook after its kernel ran?"""
    assert assigned_names(source) == set(), why


def _cell(**fields) -> dict:
    return {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [],
            "execution_count": None, **fields}


@pytest.mark.parametrize("text, said", [
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                 "cells": [_cell(), _cell(source=5)]}), "cell 2 is not a cell"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [1, 2]}),
     "is not a valid notebook"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                 "cells": [_cell(metadata=[])]}), "is not a valid notebook"),
    ('{"nbformat": 4, "cells": [], "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "nested too deeply"),
])
def test_a_malformed_notebook_is_a_submission_error_naming_the_file(tmp_path, text, said):
    """Is a notebook whose cells are not cells, or JSON nested past the reader's depth, a
    SubmissionError naming the file and what to do (the student gets a zero that says why),
    never an exception that leaves the student without a result?"""
    path = tmp_path / "homework.ipynb"
    path.write_text(text)
    with pytest.raises(SubmissionError) as info:
        Submission.read(path)
    assert info.value.message.startswith("homework.ipynb ") and said in info.value.message
    assert info.value.hint


def code_notebook(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_defined_in_is_the_last_executed_assignment():
    """Is a name's cell the last *executed* one that assigns it (a cell that never ran
    defines nothing)?"""
    sub = Submission.of(Path("s.ipynb"), code_notebook(
        "y = 0", "x = 1", "q = 9", "x = 2\ny = 1", "print(x)", "x = 3"))
    assert sub.defined_in([1, 3, 4], {"x", "y", "q"}) == {"x": 3, "y": 3}


def test_first_cells_is_a_submission_of_its_own(tmp_path):
    """Does the replay's submission hold exactly the first cells, on disk and parsed, and
    leave the original untouched?"""
    sub = Submission.of(tmp_path / "s.ipynb", code_notebook("a = 1", "b = 2", "c = 3"))
    head = sub.first_cells(2, path=tmp_path / "replay.ipynb")
    assert head.cell_sources == ("a = 1", "b = 2")
    assert [c.source for c in nbformat.read(head.path, as_version=4).cells] == ["a = 1", "b = 2"]
    assert len(sub.notebook.cells) == 3 and head.names.defining("c") == []


def test_cell_sources_keep_indexes_and_drop_non_code():
    """Do markdown and raw cells count as cells (indexes match the notebook) yet define nothing?"""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("x = 1"), nbformat.v4.new_code_cell("y = 2"),
        nbformat.v4.new_raw_cell("z = 3")])
    sources = cell_sources(nb)
    assert sources == ["", "y = 2", ""]
    names = CellNames(sources)
    assert (names.defining("x"), names.defining("y"), names.defining("z")) == ([], [1], [])
