"""Several graders starting at once on a new gradebook (the hub's service runs one `course
grade` per submission, two or more at a time) all record their assignment."""

import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import sys, time
from pathlib import Path
import nbgrader.api
from autograder.grading.gradebook import ensure_assignment
gate = Path(sys.argv[2])
while not gate.exists():  # imports done: start together
    time.sleep(0.005)
ensure_assignment(Path(sys.argv[1]), assignment_id="cnn_transfer", notebook_id="cnn_transfer",
                  points={"q1_conv_params": 2, "q2_cnn_accuracy": 2})
"""


def test_graders_starting_together_on_a_new_gradebook_all_succeed(tmp_path):
    """Do six processes creating the same new gradebook at once all succeed (before, the
    second CREATE TABLE failed with 'already exists' and that submission's grade was lost)?"""
    from nbgrader.api import Gradebook

    db = tmp_path / "gradebook.db"
    gate = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(db), str(gate)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    time.sleep(8)  # every process has imported nbgrader and waits at the gate
    gate.touch()
    results = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        results.append((proc.returncode, err))
    assert [code for code, _ in results] == [0] * 6, [err[-500:] for _, err in results]
    with Gradebook(f"sqlite:///{db}") as gb:
        assert [c.name for c in gb.find_notebook("cnn_transfer", "cnn_transfer").grade_cells] \
            == ["q1_conv_params", "q2_cnn_accuracy"]


def test_a_new_gradebook_carries_the_migration_head_nbgrader_stamps(tmp_path):
    """The kit stamps a new gradebook with nbgrader's migration head read in process (no
    ``alembic`` subprocess): is it the revision ``alembic heads`` reports for nbgrader's
    scripts, so that ``nbgrader db upgrade`` and formgrader accept the file as their own?"""
    import sqlite3

    from nbgrader.dbutil import _temp_alembic_ini

    from autograder.grading.gradebook import ensure_assignment

    db = tmp_path / "gradebook.db"
    ensure_assignment(db, assignment_id="cnn_transfer", notebook_id="cnn_transfer",
                      points={"q1_conv_params": 2})
    with sqlite3.connect(db) as conn:
        stamped = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    alembic = str(Path(sys.executable).with_name("alembic"))
    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'other.db'}") as ini:
        heads = subprocess.run([alembic, "-c", ini, "heads"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert stamped == [(heads[0],)]
    upgrade = subprocess.run([str(Path(sys.executable).with_name("nbgrader")), "db", "upgrade",
                              "--db", f"sqlite:///{db}"], capture_output=True, text=True,
                             cwd=tmp_path, env={**os.environ, "PATH": os.pathsep.join(
                                 [str(Path(sys.executable).parent), os.environ["PATH"]])})
    assert upgrade.returncode == 0, upgrade.stderr[-1000:]


def test_recording_grades_warns_nothing_and_writes_every_row(tmp_path, monkeypatch):
    """Recording two students' grades raises no warning, even when another grading thread
    resets the process-wide warning filters meanwhile (SQLAlchemy's autoflush warning inside
    nbgrader's add_submission used to be filtered with catch_warnings(), which another thread
    leaving its own catch_warnings() undid, and it reached the demo's console), and the
    gradebook holds each student's submission with the scores given."""
    import warnings

    from nbgrader import api
    from nbgrader.api import Gradebook

    real_add = api.Gradebook.add_submission

    def add_after_another_thread_restored_the_filters(self, *args, **kwargs):
        warnings.filters[:] = strict  # what another thread's catch_warnings() exit does
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(api.Gradebook, "add_submission",
                        add_after_another_thread_restored_the_filters)

    from autograder.facts import ExecutionResult, GradeResult, ItemResult
    from autograder.grading.gradebook import ensure_assignment, record_grades

    db = tmp_path / "gradebook.db"
    points = {"q1_conv_params": 2, "q2_cnn_accuracy": 3}
    ensure_assignment(db, assignment_id="cnn_transfer", notebook_id="cnn_transfer", points=points)
    given = {"student1": {"q1_conv_params": 2.0, "q2_cnn_accuracy": 1.5},
             "student2": {"q1_conv_params": 0.0, "q2_cnn_accuracy": 3.0}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strict = list(warnings.filters)
        for student, scores in given.items():
            items = tuple(ItemResult(name, score, float(points[name]), score == points[name], "")
                          for name, score in scores.items())
            result = GradeResult(
                student=student, assignment_id="cnn_transfer", score=sum(scores.values()),
                max_score=5.0, items=items,
                execution=ExecutionResult(student=student, cells=(), kernel_status="finished",
                                          wall_s=1.0))
            assert record_grades(db, result, notebook_id="cnn_transfer") == []
    with Gradebook(f"sqlite:///{db}") as gb:
        for student, scores in given.items():
            submission = gb.find_submission("cnn_transfer", student)
            assert {g.name: g.auto_score for g in submission.notebooks[0].grades} == scores
            assert submission.score == sum(scores.values())


def test_recording_grades_does_not_load_nbgraders_notebook_server_extensions(tmp_path):
    """nbgrader's package __init__ loads its Jupyter server extensions (jupyter_server and the
    exchange), about 0.4 CPU-s of every grade, which a database write never uses. In a fresh
    process, does the gradebook write leave them out, and still leave nbgrader's version where
    nbgrader's own apps read it?"""
    from nbgrader._version import __version__

    script = (
        "import sys\nfrom pathlib import Path\n"
        "from autograder.grading.gradebook import ensure_assignment\n"
        "ensure_assignment(Path(sys.argv[1]), assignment_id='a', notebook_id='a', points={'q': 1})\n"
        "import nbgrader\n"
        "print(nbgrader.__version__, 'jupyter_server' in sys.modules,"
        " 'nbgrader.server_extensions' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "gradebook.db")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [__version__, "False", "False"]
