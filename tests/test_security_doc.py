"""SECURITY.md stays true: every test it names exists, and every wall in its tables names a test
or says, under *Known gaps*, that none proves it yet."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "SECURITY.md"
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _tables_of_walls(text: str) -> list[str]:
    """The body rows of the tables under "## Limits and walls" (up to the next "## ")."""
    section = text.split("\n## Limits and walls", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [row for row in rows if not row.startswith(("| limit / wall", "|---"))]


def _test_functions(path: Path) -> set[str]:
    """Names of the test functions pytest would collect from ``path`` (top level or in a class)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in tree.body:
        bodies = node.body if isinstance(node, ast.ClassDef) else [node]
        names |= {f.name for f in bodies if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def test_every_test_named_in_security_md_exists():
    """Does each `tests/<file>.py::<test>` in SECURITY.md name a file that defines that test?"""
    references = REFERENCE.findall(DOC.read_text())
    assert len(references) >= 40, "SECURITY.md names fewer tests than its tables hold: is the pattern broken?"
    missing = []
    for file, name in sorted(set(references)):
        path = REPO / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif not name.startswith("test_") or name not in _test_functions(path):
            missing.append(f"{file}::{name}")
    assert not missing, "SECURITY.md names tests that do not exist; update it: " + ", ".join(missing)


def test_every_wall_names_its_proof_or_its_gap():
    """Does every row of the limits tables name a test, or point at *Known gaps*?"""
    text = DOC.read_text()
    rows = _tables_of_walls(text)
    assert len(rows) >= 30
    unproved = [row.split("|")[1].strip() for row in rows
                if not REFERENCE.search(row) and "Known gaps" not in row]
    assert not unproved, f"walls without a test or a known-gap note: {unproved}"
    assert "\n## Known gaps\n" in text
