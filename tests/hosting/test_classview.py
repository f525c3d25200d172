"""The instructor's class view: counts taken from the graded results.json files, drawn."""

import csv
import io

from autograder.hosting.classview import class_csv, class_page, class_stats


def results(score, passed, *, runtime=30.0, slowest=5.0, na=()):
    tests = [{"name": name, "score": 1.0 if ok else 0.0, "max_score": 1.0,
              "status": "passed" if ok else "failed"} for name, ok in passed.items()]
    tests += [{"name": name, "score": 0.0, "max_score": 0.0, "tags": ["not-assessable"]} for name in na]
    return {"score": score, "max_score": 3.0, "execution_time": runtime, "tests": tests,
            "extra_data": {"cells": [{"runtime_s": 1.0}, {"runtime_s": slowest}]}}


CLASS = {
    "ann": results(3.0, {"q1": True, "q2": True, "q3": True}, runtime=40, slowest=9, na=("q4",)),
    "bob": results(1.0, {"q1": True, "q2": False, "q3": False}, runtime=20, slowest=3, na=("q4",)),
    "=cmd|' /C calc'!A0": results(2.0, {"q1": True, "q2": True, "q3": False}),
}


def test_stats_count_each_students_latest_result():
    """Are scores, per-item pass rates (not-assessable items left out) and run times taken
    from the results as they are?"""
    stats = class_stats("cnn_transfer", CLASS)
    assert sorted(stats.scores) == [1.0, 2.0, 3.0] and stats.max_score == 3.0
    assert list(stats.items) == ["q1", "q2", "q3"]
    assert [round(stats.pass_rate(i), 3) for i in ("q1", "q2", "q3")] == [1.0, 0.667, 0.333]
    assert sorted(stats.runtimes_s) == [20.0, 30.0, 40.0]
    assert sorted(stats.slowest_cell_s) == [3.0, 5.0, 9.0]


def test_csv_has_one_row_per_student_and_no_formulas():
    """Does the download hold every student's points per item, and can no student id run as a
    spreadsheet formula?"""
    rows = list(csv.reader(io.StringIO(class_csv(CLASS))))
    assert rows[0] == ["student", "score", "max_score", "runtime_s", "q1", "q2", "q3", "q4"]
    assert len(rows) == 4
    assert all(not r[0].startswith("=") for r in rows[1:])
    ann = next(r for r in rows if r[0] == "ann")
    assert ann[1:5] == ["3.0", "3.0", "40", "1.0"]


def test_page_draws_three_plots_with_the_limits():
    """Does the page show the histogram, pass rates and run times (with the limits drawn),
    escape student-controlled text, and say so when nothing is graded yet?"""
    page = class_page(class_stats("cnn_transfer", CLASS), limits={"notebook_budget_s": 900,
                                                                  "cell_timeout_s": 240},
                      csv_href="class.csv")
    assert page.count("<svg") == 3
    assert "limit 900 s" in page and "limit 240 s" in page
    assert "href='class.csv'" in page and "3 student(s)" in page
    assert "calc" not in page  # student ids are not shown on the plots
    empty = class_page(class_stats("cnn_transfer", {}), limits={}, csv_href="class.csv")
    assert "No graded submission yet" in empty and "<svg" not in empty
