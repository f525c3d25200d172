"""Stage 4 output: results.json (Gradescope's format), feedback.html and grades.csv.

Pure rendering from a :class:`~autograder.facts.GradeResult`; files are written
atomically (temp file + rename) so an interrupted batch never leaves half a
result that a re-run would mistake for a finished one. ``results.json`` is
written last and is the marker that a submission is graded.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

from autograder import plots
from autograder.course.settings import Limits
from autograder.facts import GradeResult, ItemResult
from autograder.grading import messages
from autograder.grading.layout import ItemLabel
from autograder.grading.score import printable

RESULTS_FILE = "results.json"
FEEDBACK_FILE = "feedback.html"


def results_json(result: GradeResult, labels: dict[str, ItemLabel] | None = None
                 ) -> dict[str, Any]:
    """Gradescope's autograder results format; with the notebook's ``labels``, each test gets
    its question as ``number`` ("1b") and its part as a tag."""
    ex = result.execution
    output = []
    if ex.weights_mode == "stand-in":
        output.append(messages.STAND_IN_LABEL)
    output.extend(ex.notes)
    return {
        "score": round(result.score, 4),
        "max_score": result.max_score,
        "execution_time": round(ex.wall_s, 2),
        "output": "\n".join(output),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [_test_json(i, (labels or {}).get(i.name)) for i in result.items],
        "extra_data": {
            **({"grader_error": result.grader_error} if result.grader_error else {}),
            "student": result.student,
            "assignment": result.assignment_id,
            "kernel_status": ex.kernel_status,
            "sandboxed": ex.sandboxed,
            "weights_mode": ex.weights_mode,
            "cells": [
                {"index": c.index, "grade_id": c.grade_id, "status": c.status,
                 "runtime_s": round(c.runtime_s, 3), "limit": c.limit, "message": c.message}
                for c in ex.cells
            ],
        },
    }


def _test_json(item: ItemResult, label: ItemLabel | None = None) -> dict[str, Any]:
    test = {"name": item.name, "score": item.score, "max_score": item.max_score,
            "status": "passed" if item.passed else "failed", "output": item.message,
            "visibility": item.visibility}
    if label is not None and label.question:
        test["number"] = label.question.removeprefix("Question").strip()
    if label is not None and label.part:
        test["tags"] = [label.part]
    if not item.assessable:  # 0 of 0, labelled; Gradescope has no status for it
        del test["status"]
        test["tags"] = [*test.get("tags", []), "not-assessable"]
    return test


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one;
    on any failure (disk full, say) the temporary file is removed and the error raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_student_reports(result: GradeResult, student_dir: Path, *, limits: Limits,
                          labels: dict[str, ItemLabel] | None = None,
                          template_dir: Path | None = None,
                          pass_marks: dict[str, float] | None = None) -> None:
    """feedback.html, then results.json (the marker that the submission is graded)."""
    try:
        page = feedback_html(result, limits=limits, labels=labels, template_dir=template_dir,
                             pass_marks=pass_marks)
    except Exception as exc:  # the page is a courtesy; the grade must still be written
        page = _plain_feedback(result, f"{type(exc).__name__}")
    write_atomic(student_dir / FEEDBACK_FILE, page)
    write_atomic(student_dir / RESULTS_FILE,
                 json.dumps(results_json(result, labels), indent=1, allow_nan=False, default=str))


def _plain_feedback(result: GradeResult, why: str) -> str:
    e = html.escape
    rows = "".join(f"<li>{e(i.name)}: {i.score:g} / {i.max_score:g} — {e(printable(i.message))}</li>"
                   for i in result.items)
    return (f"<!doctype html><meta charset=utf-8><title>Feedback</title>"
            f"<p>{result.score:g} / {result.max_score:g}</p><ul>{rows}</ul>"
            f"<p>(The full page could not be drawn: {e(why)}.)</p>")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A spreadsheet-safe cell: text that a spreadsheet would run as a formula (OWASP's
    list: = + - @ tab CR) gets a leading apostrophe; numbers are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_grades_csv(out_dir: Path, *, item_names: list[str]) -> Path:
    """Rebuild grades.csv from every results.json (never appended, so never double-counted)."""
    rows = []
    for results in sorted(out_dir.glob(f"*/{RESULTS_FILE}")):
        data = json.loads(results.read_text())
        by_name = {t["name"]: t["score"] for t in data.get("tests", [])}
        rows.append([csv_cell(v) for v in (
            results.parent.name, data["score"], data.get("max_score", ""),
            data.get("extra_data", {}).get("kernel_status", ""),
            *[by_name.get(n, "") for n in item_names])])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", "score", "max_score", "kernel_status", *item_names])
    writer.writerows(rows)
    path = out_dir / "grades.csv"
    write_atomic(path, buf.getvalue())
    return path


# ---------------------------------------------------------------------------
# feedback.html: one self-contained page (no scripts, no external files).

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.score{font-size:34px;font-weight:700} .muted{color:#5b6473}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px;margin:12px 0}
.banner{background:#fff4d6;border:1px solid #e7c65b;border-radius:8px;padding:10px 14px;margin:12px 0}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eceff3;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
.pass{color:#11763b;font-weight:600} .fail{color:#b42318;font-weight:600}
.bar{height:8px;background:#e8ebf0;border-radius:4px;overflow:hidden;min-width:120px}
.bar>span{display:block;height:100%;background:#4a7bd0} .bar>span.hot{background:#d05a4a}
.num{text-align:right;font-variant-numeric:tabular-nums}
.curves{display:flex;flex-wrap:wrap;gap:12px}
svg text{font:11px system-ui,sans-serif;fill:#5b6473}
h3{font-size:15px;margin:0 0 8px;display:flex;justify-content:space-between}
.q{font-weight:600} code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;color:#5b6473}
.next ol{margin:0;padding-left:22px} .next li{margin:4px 0}
table.items{table-layout:fixed} .items th:nth-child(1){width:36%} .items th:nth-child(2){width:9%}
"""


TEMPLATE = "feedback.html.j2"
"""The page's Jinja2 template: the kit's own in ``grading/templates/``, unless the course has
a file of this name in the folder passed as ``template_dir`` (``<course root>/templates/``)."""
SUMMARY_ROWS = 60


def feedback_html(result: GradeResult, *, limits: Limits,
                  labels: dict[str, ItemLabel] | None = None,
                  template_dir: Path | None = None,
                  pass_marks: dict[str, float] | None = None) -> str:
    """The student's page: score, notes, the rubric grouped by the notebook's parts (items
    named as the notebook names them), what to do next, curves (with each model's pass mark
    from ``pass_marks``), model summaries, cells."""
    return _template(template_dir).render(**feedback_view(result, limits=limits, labels=labels,
                                                          pass_marks=pass_marks))


def _template(template_dir: Path | None) -> Any:
    import jinja2

    loaders: list[Any] = []
    if template_dir is not None and (template_dir / TEMPLATE).is_file():
        loaders.append(jinja2.FileSystemLoader(str(template_dir)))
    loaders.append(jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE)


def feedback_view(result: GradeResult, *, limits: Limits,
                  labels: dict[str, ItemLabel] | None = None,
                  pass_marks: dict[str, float] | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain values (the template only lays them out)."""
    from markupsafe import Markup

    ex = result.execution
    labels = labels or {}
    banners = ([messages.STAND_IN_LABEL] if ex.weights_mode == "stand-in" else []) + list(ex.notes)
    items = sorted(result.items, key=lambda i: labels[i.name].order if i.name in labels else 1 << 30)
    failed = [i for i in items if i.assessable and not i.passed]
    return {
        "css": Markup(_CSS),
        "assignment": result.assignment_id,
        "student": printable(result.student),
        "score": f"{result.score:g} / {result.max_score:g}",
        "wall_s": f"{ex.wall_s:.1f}",
        "kernel_status": ex.kernel_status,
        "banners": banners,
        "parts": _parts(items, labels),
        "next_steps": [_item_view(i, labels) for i in failed],
        "advice": messages.NEXT_ADVICE if failed else messages.NEXT_ALL_PASSED,
        "curves": [Markup(_curve_svg(name, h, threshold=_pass_mark(name, pass_marks)))
                   for name, h in sorted(ex.histories.items()) if h],
        "summaries": [_summary_view(name, rows) for name, rows in result.model_summaries.items()],
        "cell_timeout": f"{limits.cell_timeout_s or 1:g}",
        "cells": [_cell_view(c, limits.cell_timeout_s or 1) for c in ex.cells],
    }


def _pass_mark(history: str, pass_marks: dict[str, float] | None) -> float | None:
    """``cnn_history`` is the training of ``cnn_model``: its accuracy pass mark, if any."""
    return (pass_marks or {}).get(history.removesuffix("_history") + "_model")


def _item_view(item: ItemResult, labels: dict[str, ItemLabel]) -> dict[str, Any]:
    css, mark = ("pass", "✓") if item.passed else ("fail", "✗")
    points = f"{item.score:g} / {item.max_score:g}"
    if not item.assessable:
        css, mark, points = "muted", "–", "not assessed"
    label = labels.get(item.name)
    return {"name": item.name, "question": label.question if label else "", "points": points,
            "css": css, "mark": mark, "message": item.message,
            "when": messages.VISIBILITY_NOTE.get(item.visibility, "")}


def _parts(items: list[ItemResult], labels: dict[str, ItemLabel]) -> list[dict[str, Any]]:
    """Consecutive items of one notebook part form a group (one group, untitled, when the
    notebook has no parts)."""
    groups: list[dict[str, Any]] = []
    for item in items:
        title = labels[item.name].part if item.name in labels else ""
        if not groups or groups[-1]["title"] != title:
            groups.append({"title": title, "rows": [], "got": 0.0, "of": 0.0})
        groups[-1]["rows"].append(_item_view(item, labels))
        groups[-1]["got"] += item.score
        groups[-1]["of"] += item.max_score
    for group in groups:
        group["score"] = f"{group.pop('got'):g} / {group.pop('of'):g}"
    return groups


def _summary_view(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    shown = [{"name": printable(str(r["name"])), "type": printable(str(r["type"])),
              "shape": "—" if r.get("output_shape") is None else str(tuple(r["output_shape"])),
              "params": f"{r['params']:,}", "trainable": _trainable_text(r)}
             for r in rows[:SUMMARY_ROWS]]
    return {"name": name, "rows": shown, "more": max(0, len(rows) - SUMMARY_ROWS)}


def _trainable_text(row: dict[str, Any]) -> str:
    """"yes"/"no", or for a nested model which of its layers train ("the last 10 of 175")."""
    inner = row.get("inner_trainable")
    if not isinstance(inner, dict):
        return "yes" if row.get("trainable") else "no"
    n, total = int(inner.get("open", 0)), int(inner.get("total", 0))
    if n == 0:
        return f"no (all {total} layers frozen)"
    if n == total:
        return f"yes (all {total} layers)"
    where = "the last " if inner.get("last") else ""
    return f"{where}{n} of {total} layers"


def _cell_view(c: Any, timeout: float) -> dict[str, Any]:
    share = min(1.0, c.runtime_s / timeout)
    note = c.message or ""
    if c.limit:
        note = c.limit + (": " + note if note else "")
    return {"label": f"{c.index + 1}" + (f" ({c.grade_id})" if c.grade_id else ""),
            "status": c.status, "runtime": f"{c.runtime_s:.1f}", "share": f"{share * 100:.1f}",
            "hot": share > 0.8 or bool(c.limit), "note": note}


_drawn: dict[tuple[str, str, float | None], str] = {}
"""Curves :func:`draw_curves_now` drew ahead, until the page takes them."""
_drawing = threading.Lock()
"""One drawing at a time: matplotlib's style settings (``rc_context``) are global."""


def draw_curves_now(histories: dict[str, dict[str, list[float]]],
                    pass_marks: dict[str, float] | None = None) -> threading.Thread:
    """Draw the feedback page's training curves on a thread of their own, now: the grader calls
    this once the notebook's histories are known, while the checker judges, so the page does not
    wait the third of a second matplotlib takes (issue 12). Join the thread before writing the
    page: the page takes each drawing made from the same history and draws any other then."""
    def draw() -> None:
        for name, history in sorted(histories.items()):
            if history:
                threshold = _pass_mark(name, pass_marks)
                with _drawing:
                    _drawn[_curve_key(name, history, threshold)] = _draw_curve(
                        name, history, threshold=threshold)

    thread = threading.Thread(target=draw, name="draw-curves", daemon=True)
    thread.start()
    return thread


def _curve_key(name: str, history: dict[str, list[float]], threshold: float | None
               ) -> tuple[str, str, float | None]:
    return name, json.dumps(history, sort_keys=True, default=str), threshold


def _curve_svg(name: str, history: dict[str, list[float]], *,
               threshold: float | None = None) -> str:
    """:func:`_draw_curve`, or the drawing :func:`draw_curves_now` made of it (taken once)."""
    with _drawing:
        drawn = _drawn.pop(_curve_key(name, history, threshold), None)
        return drawn if drawn is not None else _draw_curve(name, history, threshold=threshold)


def _draw_curve(name: str, history: dict[str, list[float]], *,
                threshold: float | None = None) -> str:
    """Loss and accuracy per epoch, train solid and validation dashed, as one inline SVG drawn
    by matplotlib, with axes, a legend and, on the accuracy panel, the pass mark the model is
    held to on the hidden split. Non-finite values are gaps, never points."""
    import matplotlib

    panels = [m for m in ("loss", "accuracy")
              if any(_finite(history.get(k)) for k in (m, f"val_{m}"))]
    if not panels:
        return ""
    look = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
    with matplotlib.rc_context(look):
        fig = plots.figure(3.9 * len(panels), 2.6)
        for ax, metric in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            for (label, ys), style in zip(plot_series(history, metric), ("-", "--")):
                if any(y == y for y in ys):
                    ax.plot(range(1, len(ys) + 1), ys, style, marker="o", markersize=3,
                            color="#4a7bd0" if metric == "loss" else "#11763b", label=label)
            if metric == "accuracy":
                ax.set_ylim(0, 1)
                if threshold is not None:
                    ax.axhline(threshold, color="#b42318", linestyle=":", linewidth=1.2,
                               label=f"pass mark {threshold:.0%} (hidden split)")
            ax.set_title(f"{name}: {metric}")
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(frameon=False, fontsize=8)
    return plots.inline_svg(fig, f"curve-{name}", look)


def plot_series(history: dict[str, list[float]], metric: str) -> list[tuple[str, list[float]]]:
    """("train", values) and ("validation", values) of ``metric``, every non-finite value
    replaced by NaN (a gap in the line, never a point)."""
    return [(label, [float(v) if _finite([v]) else float("nan") for v in history.get(key) or []])
            for key, label in ((metric, "train"), (f"val_{metric}", "validation"))]


def _finite(values: Any) -> bool:
    try:
        return any(math.isfinite(float(v)) for v in values or [])
    except (TypeError, ValueError):
        return False
