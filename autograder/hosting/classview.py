"""The instructor's view of the class: what the grades look like, at a glance.

From each student's latest graded submission (its ``results.json``, as the grader wrote
it): a histogram of scores, the pass rate of every rubric item, and the notebooks' run
times against the limits the grader applied, drawn with matplotlib as inline SVG; and the
same rows as CSV for a spreadsheet. Pure functions over plain data: the service gathers
the files, this module counts and draws.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field
from typing import Any

from autograder import plots
from autograder.grading.report import csv_cell


@dataclass
class ClassStats:
    assignment: str
    students: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    max_score: float = 0.0
    items: dict[str, list[bool]] = field(default_factory=dict)
    """Item -> passed, per student (not-assessable items are left out)."""
    runtimes_s: list[float] = field(default_factory=list)
    slowest_cell_s: list[float] = field(default_factory=list)

    def pass_rate(self, item: str) -> float:
        results = self.items.get(item) or []
        return sum(results) / len(results) if results else 0.0


def class_stats(assignment: str, results: dict[str, dict[str, Any]]) -> ClassStats:
    """``results``: student -> their latest results.json (already parsed)."""
    stats = ClassStats(assignment=assignment)
    for student, data in sorted(results.items()):
        stats.students.append(student)
        stats.scores.append(float(data.get("score") or 0.0))
        stats.max_score = max(stats.max_score, float(data.get("max_score") or 0.0))
        for test in data.get("tests") or []:
            if "not-assessable" in (test.get("tags") or []):
                continue
            stats.items.setdefault(str(test.get("name")), []).append(test.get("status") == "passed")
        stats.runtimes_s.append(float(data.get("execution_time") or 0.0))
        cells = (data.get("extra_data") or {}).get("cells") or []
        stats.slowest_cell_s.append(max((float(c.get("runtime_s") or 0.0) for c in cells),
                                        default=0.0))
    return stats


def class_csv(results: dict[str, dict[str, Any]]) -> str:
    """One row per student: score, max, run time, and each item's points (spreadsheet-safe)."""
    items: list[str] = []
    for data in results.values():
        for test in data.get("tests") or []:
            if test.get("name") not in items:
                items.append(str(test.get("name")))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", "score", "max_score", "runtime_s", *items])
    for student, data in sorted(results.items()):
        points = {t.get("name"): t.get("score") for t in data.get("tests") or []}
        writer.writerow([csv_cell(v) for v in (student, data.get("score"), data.get("max_score"),
                                                data.get("execution_time"),
                                                *(points.get(i, "") for i in items))])
    return buf.getvalue()


def class_page(stats: ClassStats, *, limits: dict[str, float], csv_href: str) -> str:
    """The instructor's page: three plots and a link to the CSV."""
    e = html.escape
    n = len(stats.students)
    head = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Class view: "
            f"{e(stats.assignment)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{e(stats.assignment)}: the class</h1>")
    if not n:
        return head + "<p>No graded submission yet.</p></main></body></html>"
    mean = sum(stats.scores) / n
    return (head + f"<p class=muted>{n} student(s) with a graded submission; mean score "
            f"{mean:.1f} / {stats.max_score:g}. <a href='{e(csv_href)}'>Download CSV</a></p>"
            f"<h2>Scores</h2><div class=card>{_score_histogram(stats)}</div>"
            f"<h2>Pass rate per item</h2><div class=card>{_pass_rates(stats)}</div>"
            f"<h2>Run time against the limits</h2><div class=card>{_runtimes(stats, limits)}</div>"
            "</main></body></html>")


_CSS = ("body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}"
        "main{max-width:980px;margin:0 auto;padding:24px} h1{font-size:22px}"
        "h2{font-size:17px;margin:24px 0 8px} .muted{color:#5b6473}"
        ".card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px}")


def _score_histogram(stats: ClassStats) -> str:
    fig = plots.figure(8, 2.8)
    ax = fig.subplots()
    top = max(stats.max_score, 1.0)
    ax.hist(stats.scores, bins=min(20, max(5, int(top))), range=(0, top), color="#4a7bd0",
            edgecolor="white")
    ax.set_xlabel(f"score (out of {stats.max_score:g})")
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    return plots.inline_svg(fig, "class-scores")


def _pass_rates(stats: ClassStats) -> str:
    names = list(stats.items)
    fig = plots.figure(8, 0.32 * len(names) + 0.8)
    ax = fig.subplots()
    rates = [stats.pass_rate(name) * 100 for name in names]
    ax.barh(names, rates, color=["#11763b" if r >= 50 else "#b42318" for r in rates])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of students who passed")
    for y, rate in enumerate(rates):
        ax.text(min(rate + 1, 92), y, f"{rate:.0f}%", va="center", fontsize=8)
    return plots.inline_svg(fig, "class-items")


def _runtimes(stats: ClassStats, limits: dict[str, float]) -> str:
    fig = plots.figure(8, 2.8)
    left, right = fig.subplots(1, 2)
    for ax, values, limit, what in (
            (left, stats.runtimes_s, limits.get("notebook_budget_s"), "whole notebook (s)"),
            (right, stats.slowest_cell_s, limits.get("cell_timeout_s"), "slowest cell (s)")):
        top = max([*values, float(limit or 0), 1.0])
        ax.hist(values, bins=10, range=(0, top), color="#4a7bd0", edgecolor="white")
        if limit:
            ax.axvline(limit, color="#b42318", linestyle=":", label=f"limit {limit:g} s")
            ax.legend(frameon=False, fontsize=8)
        ax.set_xlabel(what)
        ax.set_ylabel("students")
        ax.yaxis.get_major_locator().set_params(integer=True)
    return plots.inline_svg(fig, "class-runtimes")
