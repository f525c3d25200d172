"""``course new <assignment>``: a new assignment that releases and grades from the first minute.

Writes, in the course root, the three places an assignment lives, agreeing with each other:

1. ``source/<id>/<id>.ipynb``: a title, a given cell, one example question (a solution cell
   and its autograded check cell, ``grade_id`` ``q1_example`` with 1 point in nbgrader's
   metadata: the one place points live) and ``source/<id>/course_helpers.py`` (the
   students' well-formedness check);
2. ``autograder/rubric/<id>/test_q1.py``: ``test_q1_example``, which compares the exported
   answer with the key that ``course calibrate`` derives from the reference solution;
3. an ``Assignment(...)`` entry in ``course_config.py``, added to ``assignments=(...)``,
   declaring that it needs no images, no backbone and no training.

It refuses to overwrite anything, and checks its own result by loading the course again.
What it deliberately does not do: release or calibrate (the instructor edits the example
first; the next commands are printed by the CLI).

Rejected: a template folder copied with string substitution (three formats to keep valid by
hand: JSON, Python, Python); the notebook is built with nbformat and validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course.config import CONFIG_FILE, RUBRIC_DIR, Course, load_course
from autograder.errors import ConfigError

EXAMPLE_ITEM = "q1_example"
EXAMPLE_ANSWER = "example_answer"
EXAMPLE_POINTS = 1
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""A Python-identifier-like id: it names a folder, a rubric package and a config constant."""


@dataclass(frozen=True)
class ScaffoldReport:
    """What ``course new`` wrote."""

    assignment_id: str
    files: tuple[Path, ...]
    """Every file written (the config file included), absolute."""


def scaffold_assignment(course: Course, assignment_id: str) -> ScaffoldReport:
    """Write the source notebook, helpers, rubric and config entry of a new assignment."""
    if not _ID.match(assignment_id):
        raise ConfigError(f"{assignment_id!r} cannot name an assignment",
                          hint="use lower-case letters, digits and _, starting with a letter "
                               "(it names a folder, a rubric package and a Python constant)")
    known = [a.assignment_id for a in course.config.assignments]
    if assignment_id in known:
        raise ConfigError(f"{assignment_id!r} is already an assignment of {CONFIG_FILE}",
                          hint="pick another id, or edit the existing one")
    notebook = f"{assignment_id}.ipynb"
    source = course.source_dir(assignment_id)
    rubric = course.root / RUBRIC_DIR / assignment_id
    for folder in (source, rubric, course.release_dir(assignment_id)):
        if folder.exists():
            raise ConfigError(f"{folder} already exists",
                              hint="remove it, or pick another assignment id")
    config_file = course.root / CONFIG_FILE
    config_text = _with_assignment(config_file.read_text(encoding="utf-8"), assignment_id,
                                   notebook=notebook, path=config_file)

    source.mkdir(parents=True)
    nbformat.write(example_notebook(assignment_id), source / notebook)
    (source / "course_helpers.py").write_text(_HELPERS.format(aid=assignment_id))
    rubric.mkdir(parents=True)
    (rubric / "__init__.py").write_text(f'"""The {assignment_id} rubric."""\n')
    (rubric / "test_q1.py").write_text(_RUBRIC)
    config_file.write_text(config_text, encoding="utf-8")
    load_course(course.root).config.assignment(assignment_id)  # the entry loads, with points
    files = (source / notebook, source / "course_helpers.py", rubric / "__init__.py",
             rubric / "test_q1.py", config_file)
    return ScaffoldReport(assignment_id=assignment_id, files=files)


def _constant(assignment_id: str) -> str:
    return assignment_id.upper()


def _with_assignment(text: str, assignment_id: str, *, notebook: str, path: Path) -> str:
    """``course_config.py``'s text with the new ``Assignment`` defined before ``COURSE =`` and
    named last in ``assignments=(...)``; a :class:`ConfigError` showing the entry to paste by
    hand when the file is not laid out that way."""
    name = _constant(assignment_id)
    entry = _ENTRY.format(name=name, aid=assignment_id, notebook=notebook,
                          answer=EXAMPLE_ANSWER)
    course_at = re.search(r"^COURSE\s*=\s*CourseConfig\(", text, re.M)
    listed = (re.compile(r"\bassignments\s*=\s*\(([^()]*)\)").search(text, course_at.end())
              if course_at else None)
    if course_at is None or listed is None:
        raise ConfigError(
            f"{path} has no `COURSE = CourseConfig(...)` with `assignments=(...)` to add to",
            hint=f"add this entry yourself and name {name} in assignments=(...):\n{entry}")
    if re.search(rf"^{name}\s*=", text, re.M):
        raise ConfigError(f"{path} already defines {name}", hint="pick another assignment id")
    names = [n.strip() for n in listed.group(1).split(",") if n.strip()]
    new_list = f"assignments=({', '.join([*names, name])},)"
    text = text[:listed.start()] + new_list + text[listed.end():]
    return text[:course_at.start()] + entry + "\n" + text[course_at.start():]


_ENTRY = '''{name} = Assignment(
    assignment_id="{aid}",
    notebook="{notebook}",
    answer_names=("{answer}",),
    model_names=(),
    history_names=(),
    calibration_seeds=(1,),  # plus grading.seed
    # needs no images, no ResNet50 and no training: see Assignment in settings.py to add them
)
'''


def _cell_meta(grade_id: str, *, grade: bool = False, solution: bool = False,
               points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def example_notebook(assignment_id: str) -> nbformat.NotebookNode:
    """The source notebook: a title, a given cell and one example question, valid nbformat."""
    md = nbformat.v4.new_markdown_cell
    code = nbformat.v4.new_code_cell
    cells = [
        md(f"# {assignment_id}\n\nReplace this introduction. Each question has a cell that calls "
           "`course_helpers.check(\"<item>\")`: it tells students at once whether an answer is "
           "well-formed; grading runs later, outside their kernel.", id="md-01"),
        code("import course_helpers", id="given-01"),
        md("## Part 1 — An example\n\n**Question 1.** Set `example_answer` to six times seven "
           "(an int).", id="md-02"),
        code(f"### BEGIN SOLUTION\n{EXAMPLE_ANSWER} = 6 * 7\n### END SOLUTION\n"
             f"print({EXAMPLE_ANSWER})", id="a-example"),
        code(f'course_helpers.check("{EXAMPLE_ITEM}")\n### BEGIN HIDDEN TESTS\n'
             f"assert {EXAMPLE_ANSWER} == 42\n### END HIDDEN TESTS", id="q1-example"),
    ]
    for cell, meta in zip(cells, (
            _cell_meta("md_01"), _cell_meta("given_01"), _cell_meta("md_02"),
            _cell_meta("a_example", solution=True),
            _cell_meta(EXAMPLE_ITEM, grade=True, points=EXAMPLE_POINTS))):
        cell.metadata["nbgrader"] = meta
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"}})
    nbformat.validate(nb)
    return nb


_HELPERS = '''"""Helpers for the {aid} notebook, shipped to students: well-formedness checks only.

``check(item)`` says at once whether the names an item needs are defined and of the right
kind; the grading itself runs later, outside the student's kernel.
"""

from __future__ import annotations

import inspect

NEEDS = {{"q1_example": ("example_answer",)}}
"""The names each graded item needs (add a line per question)."""


def check(item: str) -> None:
    if item not in NEEDS:
        raise KeyError(f"no public check named {{item!r}}; known: {{', '.join(NEEDS)}}")
    caller = inspect.currentframe()
    ns = caller.f_back.f_globals if caller and caller.f_back else {{}}
    missing = [n for n in NEEDS[item] if n not in ns]
    wrong = [n for n in NEEDS[item] if n in ns and type(ns[n]) is not int]
    problems = [f"{{n}} is not defined yet: run the cells above that define it" for n in missing]
    problems += [f"your {{n}} should be an int, not {{type(ns[n]).__name__}}" for n in wrong]
    if problems:
        raise AssertionError(f"{{item}}: " + "; ".join(problems))
    print(f"{{item}}: {{', '.join(NEEDS[item])}} well-formed (graded later)")
'''

_RUBRIC = '''"""Question 1: the example. Each test_<item> judges one autograded cell's grade_id."""

from autograder.grading.evidence import fail


def test_q1_example(evidence, key):
    got = evidence.answer("example_answer")
    if got != key["answers"]["example_answer"]:
        fail(f"example_answer is {got!r}, which is not right: multiply six by seven.")
'''
