"""One reader for a submitted notebook: validate it, match its grade ids, and say which
cell binds which name.

Every later question about the submission's text is answered here, from one parse:
the executor asks for the notebook and its grade ids, the scorer asks which cells
define a name (to explain a missing answer by the cell that should have made it).
Names are found with the AST, top-level statements only, once per cell and only when
first asked, so a 100 KiB cell or thousands of cells stay linear.
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import nbformat

from autograder.errors import SubmissionError

MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024

_FIX = "open the notebook in Jupyter, save it (File > Save), and submit that file again"


@dataclass(frozen=True)
class Submission:
    """A submitted notebook, parsed once: the file the sandbox gets, the notebook the
    kernel runs, and every cell's source for the questions asked of its text."""

    path: Path
    notebook: nbformat.NotebookNode = field(repr=False)
    cell_sources: tuple[str, ...] = field(repr=False)
    names: CellNames = field(repr=False, compare=False)

    @classmethod
    def read(cls, path: Path) -> Submission:
        """A :class:`SubmissionError` when ``path`` is not a runnable notebook."""
        return cls.of(path, read_notebook(path))

    @classmethod
    def of(cls, path: Path, notebook: nbformat.NotebookNode) -> Submission:
        sources = tuple(cell_sources(notebook))
        return cls(path=path, notebook=notebook, cell_sources=sources, names=CellNames(sources))

    def first_cells(self, count: int, *, path: Path) -> Submission:
        """The notebook's first ``count`` cells as a submission of their own, written to
        ``path`` (the replay after a lost kernel runs these)."""
        nb = nbformat.from_dict(self.notebook)
        nb.cells = nb.cells[:count]
        nbformat.write(nb, path)
        return Submission(path=path, notebook=nb, cell_sources=self.cell_sources[:count],
                          names=CellNames(self.cell_sources[:count]))

    def defined_in(self, executed: list[int], wanted: set[str]) -> dict[str, int]:
        """For each wanted name, the last of the ``executed`` cells that binds it."""
        ran = set(executed)
        found: dict[str, int] = {}
        for name in wanted:
            cells = [i for i in self.names.defining(name) if i in ran]
            if cells:
                found[name] = cells[-1]
        return found


def read_notebook(notebook_path: Path) -> nbformat.NotebookNode:
    """The notebook, or a :class:`SubmissionError` saying what is wrong and what to do."""
    name = notebook_path.name
    text = _read_text(notebook_path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{name} is not valid JSON (line {exc.lineno}: {exc.msg})",
                              hint=_FIX) from None
    except RecursionError:
        raise SubmissionError(f"{name} is JSON nested too deeply to be a notebook", hint=_FIX) \
            from None
    if not isinstance(data, dict) or "cells" not in data:
        raise SubmissionError(f"{name} is JSON but not a notebook (no cells)", hint=_FIX)
    if data.get("nbformat") != 4:
        raise SubmissionError(
            f"{name} has nbformat {data.get('nbformat')!r}; the grader reads nbformat 4",
            hint="open it in a current Jupyter (it converts the file), save, and submit again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise SubmissionError(f"{name} is not a valid notebook ({type(exc).__name__}: "
                              f"{str(exc)[:200]})", hint=_FIX) from None
    for index, cell in enumerate(nb.cells):
        if not (isinstance(cell, dict) and isinstance(cell.get("cell_type"), str)
                and isinstance(cell.get("source", ""), str)
                and isinstance(cell.get("metadata", {}), dict)):
            raise SubmissionError(f"{name} is not a valid notebook: cell {index + 1} is not a "
                                  "cell with a type, text source and metadata", hint=_FIX)
    if not any(c.get("cell_type") == "code" and c.get("source", "").strip() for c in nb.cells):
        raise SubmissionError(f"{name} has no code cells",
                              hint="submit the notebook you worked in, with your code")
    return nb


def _read_text(notebook_path: Path) -> str:
    name = notebook_path.name
    try:
        size = notebook_path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            raise SubmissionError(f"{name} is {size:,} bytes, over the {MAX_NOTEBOOK_BYTES:,} "
                                  "allowed", hint="clear the outputs (Edit > Clear All Outputs) "
                                  "and submit again")
        return notebook_path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SubmissionError(f"{name} does not exist", hint="submit the assignment notebook") \
            from None
    except UnicodeDecodeError:
        raise SubmissionError(f"{name} is not UTF-8 text", hint=_FIX) from None


def release_grade_ids(release_notebook: Path | None) -> set[str]:
    """grade_ids of the release notebook's cells (empty when there is no release yet)."""
    if release_notebook is None or not release_notebook.is_file():
        return set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb = nbformat.read(release_notebook, as_version=4)
    ids = set()
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if isinstance(grade_id, str):
            ids.add(grade_id)
    return ids


def match_grade_ids(nb: nbformat.NotebookNode, known: AbstractSet[str]) -> dict[int, str]:
    """Cell index -> grade_id, for ids the release knows and the submission uses once."""
    seen: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {})
        nbg = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
        grade_id = nbg.get("grade_id") if isinstance(nbg, dict) else None
        if isinstance(grade_id, str) and grade_id in known:
            seen.setdefault(grade_id, []).append(index)
    return {indexes[0]: gid for gid, indexes in seen.items() if len(indexes) == 1}


def cell_sources(nb: nbformat.NotebookNode) -> list[str]:
    """Every cell's source by index; markdown and raw cells as empty strings (only code can
    define a name)."""
    return ["".join(c.get("source", "")) if c.get("cell_type") == "code" else ""
            for c in nb.cells]


class CellNames:
    """Which cells bind which names, parsed once per cell, on first question."""

    def __init__(self, sources: list[str] | tuple[str, ...]) -> None:
        self.sources = sources

    @cached_property
    def _names(self) -> list[set[str]]:
        return [assigned_names(src) if src.strip() else set() for src in self.sources]

    def defining(self, name: str) -> list[int]:
        """Indexes of the cells that bind ``name`` at top level, in order."""
        return [i for i, names in enumerate(self._names) if name in names]


def assigned_names(source: str) -> set[str]:
    """Names a cell binds at top level (``x =``, ``x: T =``, ``x +=``, for/with/import/def)."""
    lines = [("pass" if line.lstrip().startswith(("%", "!")) else line)
             for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # Code Python cannot parse (a null byte, nesting past the parser's limits) binds
        # nothing: running it fails the same way.
        return set()
    names: set[str] = set()

    def targets(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                targets(target)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            targets(stmt.target)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            targets(stmt.target)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    targets(item.optional_vars)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
    return names

