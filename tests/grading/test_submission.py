"""The one reader of a submission: where each name is bound, found once per cell."""

from pathlib import Path

import nbformat

from autograder.grading.submission import CellNames, Submission, assigned_names, cell_sources


def test_assigned_names_cover_top_level_bindings():
    """Are plain, annotated, augmented, tuple, for, with, import and def bindings found,
    magics skipped, and names inside functions ignored?"""
    source = ("%matplotlib inline\nx = 1\ny: int = 2\nz += 1\na, (b, *c) = t\n"
              "for i in r: pass\nwith o as w: pass\nimport numpy as np\n"
              "def f():\n    hidden = 1\n!ls\n")
    assert assigned_names(source) == {"x", "y", "z", "a", "b", "c", "i", "w", "np", "f"}
    assert assigned_names("x = (") == set()


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
