"""Record scores in nbgrader's gradebook, so formgrader shows them.

The gradebook already knows the assignment, its notebook and its grade cells
(``course release`` runs nbgrader's generate_assignment, which writes them). Each
rubric item is the ``grade_id`` of one autograded test cell, so a score maps to
one ``Grade.auto_score``. Writes are idempotent: re-grading overwrites.

The gradebook file lives in the course root, which no sandbox ever mounts.
"""

from __future__ import annotations

from pathlib import Path

from autograder.facts import GradeResult


def record_grades(db_path: Path, result: GradeResult, *, notebook_id: str) -> list[str]:
    """Write one submission's item scores; returns the items the gradebook did not know."""
    from nbgrader.api import Gradebook, MissingEntry

    unknown = []
    with Gradebook(f"sqlite:///{db_path}") as gb:
        gb.update_or_create_student(result.student)
        try:
            gb.find_submission(result.assignment_id, result.student)
        except MissingEntry:
            gb.add_submission(result.assignment_id, result.student)
        for item in result.items:
            try:
                grade = gb.find_grade(item.name, notebook_id, result.assignment_id, result.student)
            except MissingEntry:
                unknown.append(item.name)
                continue
            grade.auto_score = item.score
        gb.db.commit()
    return unknown
