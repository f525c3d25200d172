"""Whatever a submission holds, it gets a results.json: crafted answers and folder names
graded end to end, in one batch, through the real sandbox and checker.

One notebook carries every crafted value (the reference solution with a few answers
replaced), so each expectation names exactly the items it costs; the odd folders around it
(a long name, a symlink to the instructor's notebook, a formula name, terminal escapes)
cost nothing to run, since they are refused before any kernel starts.
"""

from __future__ import annotations

import csv
import io
import json
import sys

import nbformat
import pytest

from autograder.course.samples import insert_cell_after, reference_submission
from autograder.grading import messages
from autograder.grading.jobs import discover, run_batch
from autograder.grading.pipeline import make_context

from e2e_support import REPO, e2e_course

pytestmark = [pytest.mark.slow, pytest.mark.kernel, pytest.mark.sandbox]

SOURCE = REPO / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
LONG = "a" * 65
FORMULA = '=HYPERLINK("http:x","y")'

# At the end (so no later solution cell uses them): values whose conversion once stopped
# the whole grade.
CRAFTED_ANSWERS = (
    "import keras as _k\n"
    "conv1_params = 10 ** 5000\n"  # past Python's int-to-str digit limit
    "conv2_params = 'lone \\ud800 half'\n"  # no UTF-8 file can hold it
    "shape_stride1_valid = _k.__file__\n"  # a grader path, echoed back by the check
)
# Last: the export's json.dump now writes 1e999 (JSON for inf) into cnn_history's loss.
INF_HISTORY = (
    "import json as _json\n"
    "_real_dump = _json.dump\n"
    "def _dump(obj, f, **kw):\n"
    "    if 'cnn_history' in obj:\n"
    "        obj = dict(obj, cnn_history=dict(obj['cnn_history'], loss=['INF']))\n"
    "        f.write(_json.dumps(obj).replace('\"INF\"', '1e999'))\n"
    "        return\n"
    "    return _real_dump(obj, f, **kw)\n"
    "_json.dump = _dump\n"
)
# Last cells, which Python's parser gives up on (a null byte: ValueError; nesting past its depth:
# MemoryError): reading which cell binds what once stopped the grade after the kernel ran.
UNPARSABLE = ("leftover = 1\x00", "deep = " + "-" * 100_000 + "1")
BIG_MARKDOWN = "A long essay. " * 7_000  # ~97 KiB: scoring once took seconds per item here


@pytest.fixture(scope="module")
def crafted_batch(calibrated, e2e_root):
    course = e2e_course(e2e_root)
    subs = e2e_root / "crafted-subs"
    nb = reference_submission(SOURCE)
    insert_cell_after(nb, "q5_model_choice", INF_HISTORY)
    insert_cell_after(nb, "q5_model_choice", CRAFTED_ANSWERS)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(BIG_MARKDOWN))
    for source in UNPARSABLE:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    (subs / LONG).mkdir(parents=True)
    nbformat.write(nb, subs / LONG / "cnn_transfer.ipynb")
    for name in ("linker", FORMULA):  # symlinks to the instructor's own notebook
        (subs / name).mkdir()
        (subs / name / "cnn_transfer.ipynb").symlink_to(SOURCE)
    (subs / "esc\x1b[31mape").mkdir()
    nbformat.write(reference_submission(SOURCE), subs / "esc\x1b[31mape" / "cnn_transfer.ipynb")
    out = e2e_root / "crafted-out"
    ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=out,
                       weights_mode="stand-in")
    outcome = run_batch(ctx, discover([subs], notebook="cnn_transfer.ipynb",
                                      assignment_id="cnn_transfer"))
    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}
    pages = {p.parent.name: p.read_text() for p in out.glob("*/feedback.html")}
    return course, outcome, results, pages, out


def _lost(result: dict) -> dict[str, str]:
    return {t["name"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}


def test_every_submission_gets_a_result(crafted_batch):
    """Does every folder, however odd, end with a results.json and no grader failure?"""
    _, outcome, results, _, out = crafted_batch
    assert outcome.failed == {}
    assert len(results) == 4 and LONG in results and "linker" in results and FORMULA in results
    assert not list(out.rglob("*.tmp"))


def test_crafted_values_cost_only_their_items(crafted_batch):
    """Are the huge int, the lone surrogate, the echoed path and the inf history each refused
    with a reason on exactly the items that need them, and everything else still graded?"""
    _, _, results, _, out = crafted_batch
    lost = _lost(results[LONG])
    log = (out / LONG / "grader.log").read_text()[-3000:]  # staff's view, when this fails
    assert set(lost) == {"q1_conv_params", "q1_output_shapes", "q2_cnn_trained"}, (lost, log)
    assert lost["q1_conv_params"] == messages.NOT_EXPORTABLE.format(
        name="conv1_params", detail=messages.ANSWER_TOO_BIG.format(
            what="a whole number of more than 30 digits"))
    assert "cnn_history" in lost["q2_cnn_trained"]
    maxima = {t["name"]: t["max_score"] for t in results[LONG]["tests"]}  # 0 if not assessable
    assert results[LONG]["max_score"] == sum(maxima.values())
    assert results[LONG]["score"] == sum(maxima.values()) - sum(maxima[i] for i in lost)


def test_feedback_shows_no_grader_paths_and_no_non_finite_points(crafted_batch):
    """Does the echoed path come back without the grader's folders, and do the curves carry
    no nan/inf, while the page and results.json stay valid UTF-8?"""
    _, _, results, pages, out = crafted_batch
    texts = [pages[LONG], (out / LONG / "results.json").read_text(encoding="utf-8")]
    for text in texts:
        for secret in (str(REPO), sys.prefix, "/run/course-sandbox", "/sandbox/"):
            assert secret not in text, secret
    assert "<python>/" in _lost(results[LONG])["q1_output_shapes"]
    assert "nan" not in pages[LONG].split("<h2>Training curves")[1].lower()
    assert "inf" not in pages[LONG].split("<h2>Training curves")[1].lower()


def test_links_and_bad_names_are_refused_with_a_reason(crafted_batch):
    """Is a symlink to the instructor's notebook a zero that says why (never 25/25), and a
    name with terminal escapes graded under a stand-in id, escapes shown, never sent?"""
    _, _, results, pages, out = crafted_batch
    link = results["linker"]
    assert link["score"] == 0 and link["extra_data"]["kernel_status"] == "refused"
    assert messages.SUBMISSION_SYMLINK.format(name="cnn_transfer.ipynb") in link["output"]
    [odd] = [s for s in results if s.startswith("unnamed-")]
    assert results[odd]["score"] == 0 and "\\x1b[31mape" in results[odd]["output"]
    assert all("\x1b" not in page for page in pages.values())
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    assert "'" + FORMULA in [r[0] for r in rows] and FORMULA not in [r[0] for r in rows]
