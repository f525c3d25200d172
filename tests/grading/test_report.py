"""results.json, feedback.html and grades.csv, rendered from plain results."""

import csv
import errno
import io
import json
import os
import subprocess

import pytest

from autograder.course.settings import Limits
from autograder.facts import CellRun, ExecutionResult, GradeResult, ItemResult
from autograder.grading import messages
from autograder.grading.report import (
    feedback_html,
    results_json,
    write_grades_csv,
    write_student_reports,
)

LIMITS = Limits(cell_timeout_s=240.0)


def result(student="alice", mode="imagenet", score=2.0):
    ex = ExecutionResult(
        student=student, kernel_status="finished", wall_s=12.5, weights_mode=mode,
        cells=(CellRun(0, None, "ok", 0.5), CellRun(1, "q2_cnn", "timeout", 240.0,
                                                      limit="cell_timeout_s")),
        histories={"cnn_history": {"loss": [0.7, 0.5], "val_loss": [0.69, 0.6],
                                   "accuracy": [0.5, 0.8], "val_accuracy": [0.5, 0.7]}},
    )
    items = (ItemResult("q1_conv_params", score, 2.0, score == 2.0, "Correct."),
             ItemResult("q2_cnn_accuracy", 0.0, 2.0, False, "cnn_model reached 40% <b>"))
    return GradeResult(student=student, assignment_id="cnn_transfer", score=score, max_score=4.0,
                       items=items, execution=ex,
                       model_summaries={"cnn_model": [{"name": "conv2d", "type": "Conv2D",
                                                       "output_shape": [None, 223, 223, 32],
                                                       "params": 416, "trainable": True}]})


def test_results_json_is_gradescope_shaped():
    """Does results.json carry score, execution_time and tests with Gradescope's fields?"""
    data = results_json(result())
    assert data["score"] == 2.0 and data["execution_time"] == 12.5
    assert data["tests"][1] == {"name": "q2_cnn_accuracy", "score": 0.0, "max_score": 2.0,
                                "status": "failed", "output": "cnn_model reached 40% <b>",
                                "visibility": "visible"}


def test_feedback_shows_items_cells_summary_and_curves_escaped():
    """Does the page show each item, the cell that hit its limit, the summary and the curves?"""
    page = feedback_html(result(), limits=LIMITS)
    assert "2 / 4" in page
    assert "cnn_model reached 40% &lt;b&gt;" in page  # escaped, never raw HTML from a message
    assert "cell_timeout_s" in page and "240 s limit per cell" in page
    assert "<svg" in page and "cnn_history: loss" in page
    assert "Conv2D" in page and "416" in page
    assert messages.STAND_IN_LABEL not in page


def test_stand_in_numbers_are_labelled():
    """Are stand-in weights labelled on the page and in results.json?"""
    r = result(mode="stand-in")
    assert messages.STAND_IN_LABEL in feedback_html(r, limits=LIMITS).replace("&#x27;", "'")
    assert messages.STAND_IN_LABEL in results_json(r)["output"]


def test_grades_csv_is_rebuilt_from_results_files(tmp_path):
    """Does grades.csv list each graded student once, however often it is rebuilt?"""
    write_student_reports(result("alice", score=2.0), tmp_path / "alice", limits=LIMITS)
    write_student_reports(result("bob", score=0.0), tmp_path / "bob", limits=LIMITS)
    for _ in range(2):
        path = write_grades_csv(tmp_path, item_names=["q1_conv_params", "q2_cnn_accuracy"])
    lines = path.read_text().splitlines()
    assert lines[0] == "student,score,max_score,kernel_status,q1_conv_params,q2_cnn_accuracy"
    assert lines[1:] == ["alice,2.0,4.0,finished,2.0,0.0", "bob,0.0,4.0,finished,0.0,0.0"]
    assert json.loads((tmp_path / "alice" / "results.json").read_text())["score"] == 2.0


def test_grades_csv_cannot_carry_a_spreadsheet_formula(tmp_path):
    """Is a student folder named like a formula written as text, not run by a spreadsheet?"""
    for name in ("=HYPERLINK(\"x\",\"y\")", "+1", "-2", "@SUM(A1)", "\tx", "alice"):
        write_student_reports(result(student=name), tmp_path / name.replace("/", "_"), limits=LIMITS)
    rows = list(csv.reader(io.StringIO(
        write_grades_csv(tmp_path, item_names=["q1_conv_params"]).read_text())))[1:]
    assert sorted(r[0] for r in rows) == sorted(
        ["'=HYPERLINK(\"x\",\"y\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "alice"])
    assert {r[1] for r in rows} == {"2.0"}  # numbers stay numbers


def test_curves_draw_only_finite_points():
    """Do NaN and ±inf in a history stay out of the SVG (no 'nan' points, no 'inf' labels)?"""
    r = result()
    bad = {"loss": [0.7, float("nan"), float("inf")], "val_loss": [float("-inf"), 0.6, 0.5],
           "accuracy": [0.5, 0.8, 0.9], "val_accuracy": [0.5, 0.7, 0.8]}
    r = GradeResult(r.student, r.assignment_id, r.score, r.max_score, r.items,
                    ExecutionResult(**{**r.execution.__dict__, "histories": {"cnn_history": bad}}))
    page = feedback_html(r, limits=LIMITS)
    assert "nan" not in page.lower() and "inf" not in page.lower()
    assert "<svg" in page and "cnn_history: loss" in page
    from autograder.grading.report import plot_series

    (train, ys), (val, vs) = plot_series(bad, "loss")
    assert (train, val) == ("train", "validation")
    assert [y for y in ys if y == y] == [0.7] and [v for v in vs if v == v] == [0.6, 0.5]
    assert len(ys) == 3  # the gaps keep the epochs in place


def test_curves_show_the_pass_mark_of_assessable_models_only(tmp_path):
    """Does the accuracy panel draw the model's pass mark from the key, and leave out a model
    whose accuracy is not assessable in this mode?"""
    from autograder.grading.answer_key import pass_marks

    key = tmp_path / "key.json"
    key.write_text(json.dumps({"thresholds": {"cnn_model": 0.62, "tl_model": 0.55},
                               "not_assessable": {"tl_model": "stand-in weights"}}))
    marks = pass_marks(key)
    assert marks == {"cnn_model": 0.62}
    assert "pass mark 62% (hidden split)" in feedback_html(result(), limits=LIMITS, pass_marks=marks)
    assert "pass mark" not in feedback_html(result(), limits=LIMITS)
    key.write_text("{not json")
    assert pass_marks(key) == {} and pass_marks(tmp_path / "missing.json") == {}


def test_a_not_assessable_item_is_labelled_in_both_reports():
    """Is an item left out of the maximum shown as 'not assessed', with its reason?"""
    r = result()
    item = ItemResult("q4_head_accuracy", 0.0, 0.0, False, "Not assessed here.", assessable=False)
    r = GradeResult(r.student, r.assignment_id, r.score, r.max_score, (*r.items, item), r.execution)
    test = results_json(r)["tests"][-1]
    assert test["tags"] == ["not-assessable"] and "status" not in test and test["max_score"] == 0
    assert "not assessed</td>" in feedback_html(r, limits=LIMITS)


def test_title_shows_escapes_not_terminal_controls():
    """Does a student id with terminal escapes reach the page's title only as visible text?"""
    page = feedback_html(result(student="eve\x1b]0;pwned\x07"), limits=LIMITS)
    assert "\x1b" not in page and "\x07" not in page
    assert "<title>Feedback: cnn_transfer — eve\\x1b]0;pwned\\x07</title>" in page


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_full_disk_leaves_no_half_written_result(tmp_path):
    """When the output disk is full, is the error raised with no results.json and no .tmp
    left behind, so a re-run grades the submission again?"""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        big = result()
        big = GradeResult(big.student, big.assignment_id, big.score, big.max_score,
                          (ItemResult("q1_conv_params", 0.0, 2.0, False, "x" * 200_000),),
                          big.execution)
        with pytest.raises(OSError) as info:
            write_student_reports(big, disk / "alice", limits=LIMITS)
        assert info.value.errno == errno.ENOSPC
        assert sorted(p.name for p in (disk / "alice").iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_feedback_names_and_groups_items_as_the_notebook_does(tmp_path):
    """Are items shown under the release notebook's parts, with its question labels, in
    notebook order, and do the failed ones come back under 'What to do next'?"""
    from pathlib import Path

    from autograder.course.config import load_course
    from autograder.grading.layout import item_labels

    repo = Path(__file__).resolve().parents[2]
    course = load_course(repo)
    a = course.config.assignments[0]
    labels = item_labels(course.release_dir(a.assignment_id) / a.notebook)
    assert set(labels) == set(a.points)  # every graded item is found in the notebook
    first, last = min(labels, key=lambda k: labels[k].order), max(labels, key=lambda k: labels[k].order)
    r = result()
    items = (ItemResult(last, 0.0, 1.0, False, "not yet <done>"),
             ItemResult(first, 2.0, 2.0, True, "Correct."))
    page = feedback_html(GradeResult(student="alice", assignment_id=a.assignment_id, score=2.0,
                                     max_score=3.0, items=items, execution=r.execution),
                         limits=LIMITS, labels=labels)
    import html as _html

    assert _html.escape(labels[first].part) in page and _html.escape(labels[last].part) in page
    assert page.index(f"<code>{first}</code>") < page.index(f"<code>{last}</code>")
    if labels[first].question:
        assert f"<span class=q>{labels[first].question}</span> <code>{first}</code>" in page
    next_steps = page.split("What to do next", 1)[1].split("</div>", 1)[0]
    assert f"<code>{last}</code>: not yet &lt;done&gt;" in next_steps
    assert first not in next_steps and messages.NEXT_ADVICE in next_steps
    passed = GradeResult(student="alice", assignment_id=a.assignment_id, score=2.0, max_score=2.0,
                         items=items[1:], execution=r.execution)
    assert messages.NEXT_ALL_PASSED in feedback_html(passed, limits=LIMITS, labels=labels)


def test_a_course_template_replaces_the_page_and_a_broken_one_still_gives_the_grade(tmp_path):
    """Does `<course>/templates/feedback.html.j2` replace the kit's page (values escaped), and
    does a template that fails to render still leave a page with the score and results.json?"""
    from autograder.grading.report import TEMPLATE

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / TEMPLATE).write_text("<p class=mine>{{ student }} scored {{ score }}</p>")
    page = feedback_html(result(student="<al>"), limits=LIMITS, template_dir=templates)
    assert page == "<p class=mine>&lt;al&gt; scored 2 / 4</p>"
    (templates / TEMPLATE).write_text("{{ no_such_value }}")
    write_student_reports(result(), tmp_path / "alice", limits=LIMITS, template_dir=templates)
    fallback = (tmp_path / "alice" / "feedback.html").read_text()
    assert "<p>2 / 4</p>" in fallback and "UndefinedError" in fallback
    assert json.loads((tmp_path / "alice" / "results.json").read_text())["score"] == 2.0


def test_results_json_numbers_and_tags_tests_as_the_notebook_does():
    """Does each Gradescope test carry its question as `number` and its part as a tag, and a
    not-assessable one keep its 'not-assessable' tag too?"""
    from autograder.grading.layout import ItemLabel

    labels = {"q1_conv_params": ItemLabel(part="Part 1 — Arithmetic", question="Question 1a", order=3),
              "q2_cnn_accuracy": ItemLabel(part="Part 2 — A CNN", question="", order=9)}
    r = result()
    r = GradeResult(r.student, r.assignment_id, r.score, r.max_score,
                    (r.items[0], ItemResult("q2_cnn_accuracy", 0.0, 0.0, False, "n/a",
                                            assessable=False)), r.execution)
    first, second = results_json(r, labels)["tests"]
    assert (first["number"], first["tags"]) == ("1a", ["Part 1 — Arithmetic"])
    assert "number" not in second and second["tags"] == ["Part 2 — A CNN", "not-assessable"]


def _with_items(*items: ItemResult) -> GradeResult:
    r = result()
    return GradeResult(r.student, r.assignment_id, sum(i.score for i in items),
                       sum(i.max_score for i in items), items, r.execution)


def _rubric_rows(page: str) -> dict[str, str]:
    """The feedback page's rubric rows, by item name (the row's HTML)."""
    rubric = page.split("<h2>Rubric</h2>", 1)[1].split("<h2>What to do next</h2>", 1)[0]
    return {row.split("<code>", 1)[1].split("</code>", 1)[0]: row
            for row in rubric.split("<tr>")[1:] if "<code>" in row}


def test_each_test_keeps_its_visibility_and_the_page_says_when_gradescope_shows_it(tmp_path):
    """Does results.json give each test the visibility its item carries, and does the hub's
    page show every item, a non-visible one with a note of when Gradescope shows it?"""
    items = (ItemResult("q1_conv_params", 2.0, 2.0, True, "Correct."),
             ItemResult("q2_cnn_accuracy", 0.0, 2.0, False, "Too low.", visibility="after_due_date"),
             ItemResult("q4_head_accuracy", 1.0, 1.0, True, "Correct.", visibility="hidden"),
             ItemResult("q5_finetune_accuracy", 1.0, 1.0, True, "Correct.",
                        visibility="after_published"))
    r = _with_items(*items)
    write_student_reports(r, tmp_path, limits=LIMITS)
    tests = json.loads((tmp_path / "results.json").read_text())["tests"]
    assert {t["name"]: t["visibility"] for t in tests} == {i.name: i.visibility for i in items}
    rows = _rubric_rows((tmp_path / "feedback.html").read_text())
    assert set(rows) == {i.name for i in items}  # the hub's page hides nothing
    for item in items:
        note = messages.VISIBILITY_NOTE.get(item.visibility)
        if note is None:
            assert "Gradescope" not in rows[item.name]
        else:
            assert f"{item.message} <span class=muted>{note}</span>" in rows[item.name]
    assert messages.VISIBILITY_NOTE["after_due_date"] == \
        "On Gradescope this result is shown after the due date."


def test_a_reduced_profile_note_shows_on_its_item_in_both_reports(tmp_path):
    """Does the note a reduced-profile run puts on an item reach that item's output in
    results.json and its row on the feedback page, and no other item's?"""
    from autograder.course.settings import CourseConfig
    from autograder.grading import score

    profiles = CourseConfig(course_id="c", assignments=()).profiles
    reduced = score.reduced_profile(profiles, "reduced")
    records = {"q1_conv_params": {"outcome": "passed"},
               "q2_cnn_accuracy": {"outcome": "passed", "visibility": "after_due_date",
                                   "profile_dependent": {"epochs": "cnn", "pass_mark": True}}}
    items = score.score_items(records, points={"q1_conv_params": 2, "q2_cnn_accuracy": 2},
                              execution=result().execution, cell_sources=[], limits=LIMITS,
                              reduced=reduced)
    write_student_reports(_with_items(*items), tmp_path, limits=LIMITS)
    note = messages.REDUCED_PROFILE_PASS_MARK.format(
        profile="reduced", size_px=profiles["reduced"].image_size_px,
        epochs=profiles["reduced"].cnn_epochs, full_size_px=profiles["full"].image_size_px,
        full_epochs=profiles["full"].cnn_epochs)
    outputs = {t["name"]: t["output"] for t in
               json.loads((tmp_path / "results.json").read_text())["tests"]}
    assert outputs == {"q1_conv_params": messages.PASSED,
                       "q2_cnn_accuracy": f"{messages.PASSED} {note}"}
    rows = _rubric_rows((tmp_path / "feedback.html").read_text())
    assert f"{messages.PASSED} {note}" in rows["q2_cnn_accuracy"]
    assert "reduced profile" not in rows["q1_conv_params"]


def test_curves_drawn_ahead_are_the_ones_the_page_shows(monkeypatch):
    """The grader draws the curves while the checker judges (issue 12): is the page built after
    that the page drawn on the spot, with each drawing taken from what was drawn ahead, and is a
    history that changed since drawn again rather than shown stale?"""
    from autograder.grading import report

    marks = {"cnn_model": 0.62}
    on_the_spot = feedback_html(result(), limits=LIMITS, pass_marks=marks)
    report.draw_curves_now(result().execution.histories, marks).join()
    drawn = []
    real = report._draw_curve
    monkeypatch.setattr(report, "_draw_curve",
                        lambda name, history, **kw: drawn.append(name) or real(name, history, **kw))
    assert feedback_html(result(), limits=LIMITS, pass_marks=marks) == on_the_spot
    assert drawn == []
    report.draw_curves_now(result().execution.histories, marks).join()
    drawn.clear()
    assert feedback_html(result(), limits=LIMITS) != on_the_spot  # no pass mark: drawn anew
    assert drawn == ["cnn_history"]
    report._drawn.clear()
