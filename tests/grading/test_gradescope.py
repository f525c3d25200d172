"""`course export gradescope`: the package's own `run_autograder`, run on a folder laid out as
Gradescope's `/autograder`, grades a submission exactly as `course grade` does, for an
assignment with the ResNet50 backbone and for one without any weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "hosting"))

from service_harness import ASSIGNMENT, NOTEBOOK, service_course  # noqa: E402

from autograder.grading import messages, score  # noqa: E402
from rubric_marks import rubric_tests  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.sandbox,
              pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")]


def _unpack(package: Path, ag: Path) -> Path:
    """Lay ``ag`` out as Gradescope's /autograder, the zip unpacked in source/ (modes as
    setup.sh would leave them)."""
    (ag / "source").mkdir(parents=True)
    (ag / "submission").mkdir()
    with zipfile.ZipFile(package) as zf:
        zf.extractall(ag / "source")
    for path in (ag / "source").rglob("*"):  # zipfile drops modes; run_autograder needs +x
        path.chmod(0o755 if path.is_dir() or path.name in ("run_autograder", "setup.sh") else 0o644)
    return ag


def _export(world: dict, assignment: str, out: Path, *weights: str) -> None:
    done = subprocess.run([sys.prefix + "/bin/course", "export", "gradescope", assignment,
                           "--profile", "reduced", *weights, "--out", str(out)], cwd=world["root"],
                          env=world["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def exported():
    """A course root with a current reduced/stand-in key, its Gradescope zip, and a folder
    laid out as Gradescope's /autograder with the zip unpacked in source/ (as setup.sh would
    leave it: the stand-in weights in place; the venv is this one)."""
    from autograder.course.standin import grader_weights

    base = Path(tempfile.mkdtemp(prefix="course-gradescope-"))
    base.chmod(0o755)
    world = service_course(base, written_by="tests/grading/test_gradescope.py")
    package = base / "cnn_transfer-gradescope.zip"
    _export(world, ASSIGNMENT, package, "--weights-mode", "stand-in")
    ag = _unpack(package, base / "autograder")
    weights = grader_weights(world["course"], mode="stand-in")[1]
    (ag / "source" / "course" / "weights").mkdir(exist_ok=True)
    (ag / "source" / "course" / "weights" / weights.name).write_bytes(weights.read_bytes())
    yield {**world, "base": base, "package": package, "ag": ag}
    shutil.rmtree(base, ignore_errors=True)


def run_autograder(ag: Path, notebook: Path | None, *, name: str = NOTEBOOK) -> dict:
    shutil.rmtree(ag / "results", ignore_errors=True)
    for old in (ag / "submission").iterdir():
        old.unlink()
    if notebook is not None:
        shutil.copy(notebook, ag / "submission" / name)
    (ag / "submission_metadata.json").write_text(json.dumps(
        {"users": [{"email": "ann@example.org", "name": "Ann", "sid": "s-123"}]}))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AUTOGRADER_ROOT": str(ag),
           "COURSE_VENV": sys.prefix, "HOME": str(ag)}
    done = subprocess.run(["bash", str(ag / "source" / "run_autograder")], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((ag / "results" / "results.json").read_text())


def test_the_package_holds_the_grader_and_no_more(exported):
    """Does the zip carry setup.sh, run_autograder, the kit, rubric, release, data and the key,
    and leave out the venv, state, other profiles' keys and gradebooks?"""
    names = zipfile.ZipFile(exported["package"]).namelist()
    assert {"setup.sh", "run_autograder", "course/course_config.py", "course/pyproject.toml",
            f"course/answer_keys/{ASSIGNMENT}/reduced-stand-in.json",
            f"course/release/{ASSIGNMENT}/{NOTEBOOK}"} <= set(names)
    assert any(n.startswith(f"course/autograder/rubric/{ASSIGNMENT}/test_") for n in names)
    assert any(n.startswith("course/datasets/hidden/") for n in names)
    assert not any(part in n for n in names for part in (".venv/", ".course-state/", "gradebook.db",
                                                         "__pycache__", "full-stand-in",
                                                         "autograded/", "submitted/"))
    assert exported["package"].stat().st_mode & 0o077 == 0  # secrets inside: owner only
    assert subprocess.run(["bash", "-n", str(exported["ag"] / "source" / "setup.sh")]).returncode == 0


def test_run_autograder_gives_the_same_grade_as_course_grade(exported):
    """Does Gradescope's run_autograder write a results.json with the same score, per test,
    as `course grade` of the same notebook on the course's own machine?"""
    from autograder.course.samples import write_samples

    samples = write_samples(REPO / "source" / ASSIGNMENT / NOTEBOOK, exported["base"] / "samples",
                            names=["wrong_params"])
    notebook = samples["wrong_params"]
    for p in (notebook.parent.parent, notebook.parent, notebook):
        p.chmod(0o755 if p.is_dir() else 0o644)
    out = exported["base"] / "graded"
    # Both graders at once, as two graders on one machine would run (each takes a free slot).
    ours_run = subprocess.Popen([sys.prefix + "/bin/course", "grade", ASSIGNMENT, str(notebook),
                                 "--student", "s-123", "--out", str(out), "--profile", "reduced",
                                 "--weights-mode", "stand-in"], cwd=exported["root"],
                                env=exported["env"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        theirs = run_autograder(exported["ag"], notebook)
        stdout, stderr = ours_run.communicate(timeout=1800)
    finally:
        if ours_run.poll() is None:
            ours_run.kill()
            ours_run.communicate()
    assert ours_run.returncode == 0, stdout[-2000:] + stderr[-2000:]
    ours = json.loads((out / "s-123" / "results.json").read_text())
    assert (theirs["score"], theirs["max_score"]) == (ours["score"], ours["max_score"])
    assert [(t["name"], t["score"], t["max_score"]) for t in theirs["tests"]] == \
        [(t["name"], t["score"], t["max_score"]) for t in ours["tests"]]
    assert theirs["score"] < theirs["max_score"]  # the sample is wrong somewhere: a real grade
    assert theirs["extra_data"]["sandboxed"] is True
    assert [t["visibility"] for t in theirs["tests"]] == [t["visibility"] for t in ours["tests"]]
    assert [t["output"] for t in theirs["tests"]] == [t["output"] for t in ours["tests"]]

    # Visibility follows the rubric: exactly the tests it marks show after the due date.
    tests = rubric_tests(ASSIGNMENT)
    after_due = {name for name, t in tests.items()
                 if t.marks.get("visibility") == (("after_due_date",), {})}
    assert after_due, "the rubric marks no check as shown after the due date"
    assert {t["name"] for t in theirs["tests"] if t["visibility"] == "after_due_date"} == after_due
    assert {t["visibility"] for t in theirs["tests"] if t["name"] not in after_due} == {"visible"}
    page = (out / "s-123" / "feedback.html").read_text()
    assert page.count(messages.VISIBILITY_NOTE["after_due_date"]) == len(after_due)

    # The package grades at the reduced profile: each judged item whose result depends on it
    # says what that means, with this course's numbers; no other item does.
    config = exported["course"].config
    reduced = score.reduced_profile(config.profiles, "reduced")
    noted = 0
    for test in theirs["tests"]:
        _, declared = tests[test["name"]].marks.get("profile_dependent", (None, None))
        if declared is None or "not-assessable" in test.get("tags", []):
            assert "reduced profile" not in test["output"], test
            continue
        field = declared["epochs"] + "_epochs"
        template = (messages.REDUCED_PROFILE_PASS_MARK if declared.get("pass_mark")
                    else messages.REDUCED_PROFILE_TRAINING)
        assert test["output"].endswith(" " + template.format(
            profile="reduced", size_px=reduced.profile.image_size_px,
            epochs=getattr(reduced.profile, field), full_size_px=reduced.full.image_size_px,
            full_epochs=getattr(reduced.full, field))), test
        noted += 1
    assert noted, "no profile-dependent item was judged in this mode"


def test_a_submission_without_the_notebook_still_gets_a_result(exported):
    """Does an upload without the notebook give Gradescope a zero that names the file?"""
    result = run_autograder(exported["ag"], None)
    assert result["score"] == 0.0 and NOTEBOOK in result["output"]


def test_a_weights_free_assignment_grades_on_gradescope_as_with_course_grade(exported):
    """Does the package of an assignment without a backbone (no weights, no images) grade a
    submission with one wrong answer exactly as `course grade` does, and that answer only?"""
    import nbformat

    from autograder.course.samples import reference_submission

    aid = "param_counting"
    a = exported["course"].config.assignment(aid)
    done = subprocess.run([sys.prefix + "/bin/course", "calibrate", aid, "--profile", "reduced", "--seeds", "1"],
                          cwd=exported["root"], env=exported["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    package = exported["base"] / f"{aid}-gradescope.zip"
    _export(exported, aid, package)
    ag = _unpack(package, exported["base"] / f"autograder-{aid}")
    nb = reference_submission(REPO / "source" / aid / a.notebook)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "a_dense_conv_params"]
    right = next(line for line in cell.source.splitlines() if line.startswith("dense_params ="))
    cell.source = cell.source.replace(right, right + " + 1")  # one parameter too many
    notebook = exported["base"] / "pc-sample" / a.notebook
    notebook.parent.mkdir(mode=0o755)
    nbformat.write(nb, notebook)
    notebook.chmod(0o644)
    theirs = run_autograder(ag, notebook, name=a.notebook)
    out = exported["base"] / "graded-pc"
    done = subprocess.run([sys.prefix + "/bin/course", "grade", aid, str(notebook), "--student", "s-123",
                           "--out", str(out), "--profile", "reduced"], cwd=exported["root"],
                          env=exported["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ours = json.loads((out / "s-123" / "results.json").read_text())
    assert [(t["name"], t["score"], t["max_score"]) for t in theirs["tests"]] == \
        [(t["name"], t["score"], t["max_score"]) for t in ours["tests"]]
    lost = {t["name"] for t in theirs["tests"] if t["score"] < t["max_score"]}
    assert lost == {"q1_dense_conv_params"}
    assert theirs["score"] == sum(a.points.values()) - a.points["q1_dense_conv_params"]
    assert theirs["extra_data"]["sandboxed"] is True
