"""The markers on an assignment's rubric tests, read with the AST (as course/consistency.py
reads the rubric): importing the rubric here would need its markers registered in the test
suite's own strict pytest, which only the checker's plugin registers."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RubricTest:
    item: str
    """The rubric item (``test_<item>``)."""
    params: frozenset[str]
    """The fixtures it asks for."""
    marks: dict[str, tuple[tuple[Any, ...], dict[str, Any]]]
    """``@pytest.mark.<name>(*args, **kwargs)`` -> (args, kwargs)."""
    reads_epochs: bool
    """Whether its body reads ``inputs.epochs``."""


def rubric_tests(assignment: str) -> dict[str, RubricTest]:
    tests = {}
    for path in sorted((REPO / "autograder" / "rubric" / assignment).glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                item = node.name.removeprefix("test_")
                tests[item] = RubricTest(
                    item=item, params=frozenset(a.arg for a in node.args.args),
                    marks=dict(_mark(d) for d in node.decorator_list if _mark(d)),
                    reads_epochs=any(isinstance(n, ast.Attribute) and n.attr == "epochs"
                                     and isinstance(n.value, ast.Name) and n.value.id == "inputs"
                                     for n in ast.walk(node)))
    return tests


def _mark(node: ast.expr) -> tuple[str, tuple[tuple[Any, ...], dict[str, Any]]] | None:
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call else node
    if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
            and target.value.attr == "mark"):
        return None
    if call is None:
        return target.attr, ((), {})
    return target.attr, (tuple(ast.literal_eval(a) for a in call.args),
                         {k.arg: ast.literal_eval(k.value) for k in call.keywords})
