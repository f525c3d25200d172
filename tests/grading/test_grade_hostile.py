"""Hostile submissions graded end to end in one batch beside honest ones.

Each hostile notebook is the reference solution with one hostile cell inserted after
question 1, so the intended score follows from the notebook's points: a limit that
only interrupts a cell costs nothing; one that loses the kernel costs exactly the items
that needed that cell or later. The honest reference graded in the same batch keeps its
full marks, and nothing the hostile code does reaches another student or the gradebook.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time

import nbformat
import pytest

from autograder.course.samples import insert_cell_after, reference_submission
from autograder.grading.jobs import discover, run_batch
from autograder.grading.pipeline import GRADER_LOG, make_context

from e2e_support import REPO, e2e_course

pytestmark = [pytest.mark.slow, pytest.mark.kernel, pytest.mark.sandbox]

AFTER = "q1_output_shapes"  # hostile cells go right after question 1
CELL_TIMEOUT_S = 60
DAEMON_DELAY_S = 12
DAEMON_MARKER = "hostile-daemon-7c1e"  # in the daemon's argv, to find it among all processes

ATTACK = '''
import os, socket, subprocess, sys
targets = {targets!r}
for path in targets:
    try:
        with open(path, "a") as f:
            f.write("hacked")
        print("WROTE", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
for host in ("127.0.0.1", "8.8.8.8"):
    try:
        socket.create_connection((host, 53), timeout=2).close()
        print("CONNECTED", host)
    except OSError as exc:
        print("no network", host, type(exc).__name__)
daemon = "import os, time\\ntime.sleep({delay})\\nfor p in %r:\\n    try:\\n        open(p, 'a').write('hacked-late')\\n    except OSError:\\n        pass\\nopen(os.path.expanduser('~') + '/.alive', 'w')" % (targets,)
subprocess.Popen([sys.executable, "-c", daemon, "{marker}"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
'''

MODEL_BOMB = '''
import json, zipfile, keras
UNITS = 65536
_real_save = keras.Model.save
def _grow(value):
    if isinstance(value, dict):
        return {k: (UNITS if k == "units" else _grow(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [UNITS if v == 8 else _grow(v) for v in value]
    return value
def _bomb_save(self, path, *args, **kwargs):
    tiny = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8)])
    _real_save(tiny, path, *args, **kwargs)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files["config.json"] = json.dumps(_grow(json.loads(files["config.json"]))).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            z.writestr(n, data)
keras.Model.save = _bomb_save
'''

HOSTILE = {
    "infinite_loop": "while True:\n    pass",
    "loud": "print('x' * 100_000_000)",
    "sigint_proof": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    "memory_bomb": "blocks = []\nfor _ in range(64):\n    blocks.append(bytearray(256 * 1024 * 1024))",
    "exits": "import os\nos._exit(3)",
    # Every model it exports is a 1.6 kB .keras file whose config declares a 65536 x 65536
    # Dense layer: Keras allocates its 16 GiB kernel while loading, before reading a weight.
    "model_bomb": MODEL_BOMB,
}


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def honest_grades(gradebook) -> dict[str, float]:
    """The honest student's item scores, read through nbgrader's own API (the batch adds rows
    for other students, so the file itself legitimately changes)."""
    from nbgrader.api import Gradebook

    assert b"hacked" not in gradebook.read_bytes()
    with Gradebook(f"sqlite:///{gradebook}") as gb:
        nb = gb.find_submission_notebook("cnn_transfer", "cnn_transfer", "honest")
        return {g.name: g.score for g in nb.grades}


@pytest.fixture(scope="module")
def hostile_batch(calibrated, e2e_root):
    _, key = calibrated
    course = e2e_course(e2e_root, cell_timeout_s=CELL_TIMEOUT_S)
    subs = e2e_root / "hostile-subs"
    out = e2e_root / "hostile-out"
    source = REPO / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
    # An honest student graded first, whose files the attacker goes after.
    honest = subs / "honest" / "cnn_transfer.ipynb"
    honest.parent.mkdir(parents=True)
    nbformat.write(reference_submission(source), honest)
    ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=out,
                       weights_mode="stand-in")
    run_batch(ctx, discover([subs], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer"))
    gradebook = e2e_root / "gradebook.db"
    protected = [out / "honest" / "results.json", out / "honest" / "feedback.html",
                 e2e_root / "course_config.py",
                 REPO / "source" / "cnn_transfer" / "cnn_transfer.ipynb"]
    before = {p: digest(p) for p in protected}
    before["honest grades"] = honest_grades(gradebook)
    sources = {**HOSTILE, "attacker": ATTACK.format(targets=[str(p) for p in [*protected, gradebook]],
                                                    delay=DAEMON_DELAY_S, marker=DAEMON_MARKER)}
    for name, cell in sources.items():
        nb = reference_submission(source)
        insert_cell_after(nb, AFTER, cell)
        (subs / name).mkdir()
        nbformat.write(nb, subs / name / "cnn_transfer.ipynb")
    outcome = run_batch(ctx, discover([subs], notebook="cnn_transfer.ipynb",
                                      assignment_id="cnn_transfer"))
    time.sleep(DAEMON_DELAY_S + 5)  # give a surviving daemon every chance to strike
    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}
    return course, outcome, results, before


def _failed(result: dict) -> dict[str, str]:
    return {t["name"]: t["output"] for t in result["tests"] if t["score"] < t["max_score"]}


def _cell_statuses(result: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in result["extra_data"]["cells"]:
        counts[cell["status"]] = counts.get(cell["status"], 0) + 1
    return counts


def test_the_batch_finishes_and_honest_work_is_untouched(hostile_batch):
    """Does every hostile submission get a result, with the honest student's files, the
    gradebook and the course files byte-for-byte unchanged, even after a daemon's delay?"""
    course, outcome, results, before = hostile_batch
    assert outcome.failed == {}
    assert set(results) == {"honest", *HOSTILE, "attacker"}
    after = {p: digest(p) for p in before if p != "honest grades"}
    after["honest grades"] = honest_grades(course.root / "gradebook.db")
    assert after == before
    assert _failed(results["honest"]) == {}


def test_no_daemon_survives_grading(hostile_batch):
    """Is the detached setsid daemon gone once grading ends (it never wrote, see above)?"""
    alive = subprocess.run(["pgrep", "-f", DAEMON_MARKER], capture_output=True, text=True)
    assert alive.stdout.strip() == "", f"the daemon still runs: {alive.stdout}"


def test_the_attacker_keeps_exactly_its_honest_score(hostile_batch):
    """Failed writes and a dead network cost nothing: the work itself is the reference's."""
    course, _, results, _ = hostile_batch
    assert _failed(results["attacker"]) == {}


@pytest.mark.parametrize("name", ["infinite_loop", "loud"])
def test_an_interrupted_or_cut_cell_costs_nothing_it_did_not_define(hostile_batch, name):
    """After a cell timeout (interrupt, keep going) or cut output, does the rest still count?"""
    course, _, results, _ = hostile_batch
    result = results[name]
    assert _failed(result) == {}, _failed(result)
    if name == "infinite_loop":
        cell = next(c for c in result["extra_data"]["cells"] if c["status"] == "timeout")
        assert cell["limit"] == "cell_timeout_s"
    else:
        assert "output" in result["output"].lower()


@pytest.mark.parametrize("name, words", [
    ("sigint_proof", f"ran longer than the {CELL_TIMEOUT_S} s limit per cell"),
    ("memory_bomb", "used more than the 4096 MB memory limit"),
    ("exits", "made the Python kernel die"),
])
def test_a_lost_kernel_costs_only_the_items_after_it(hostile_batch, name, words):
    """When the kernel is lost at a cell, are the items before it still credited, and does every
    later item name that cell and the limit it hit?"""
    course, _, results, _ = hostile_batch
    points = course.config.assignments[0].points
    result = results[name]
    assert result["score"] == points["q1_conv_params"] + points["q1_output_shapes"]
    failed = _failed(result)
    assert set(failed) == set(points) - {"q1_conv_params", "q1_output_shapes"}
    assert all(words in reason for reason in failed.values()), failed
    assert "ran cells 1–" in result["output"]  # the replay is explained
    assert _cell_statuses(result).get("not-run", 0) > 0


def test_a_model_file_that_asks_for_more_memory_than_allowed_costs_only_the_model_items(
        hostile_batch):
    """A crafted model file makes the checker allocate whatever its config declares. Is the
    checker held to the course's memory limit (its log says so), and does the student still get
    a grade: the answers judged, and every item that needed a model failed with the reason?"""
    course, outcome, results, _ = hostile_batch
    limit_mb = course.config.limits.memory_mb
    result = results["model_bomb"]
    failed = _failed(result)
    words = f"needed more than the {limit_mb:,} MB of memory a check may use"
    assert failed and all(words in reason for reason in failed.values()), failed
    assert {"q1_conv_params", "q1_output_shapes"}.isdisjoint(failed)  # answers, no models
    assert result["score"] > 0
    text = (course.root / "hostile-out" / "model_bomb" / GRADER_LOG).read_text()
    assert "The checker ended without a report (memory" in text, text[-2000:]
    peaks = [float(line.split("at most ")[1].split(" MB")[0].replace(",", ""))
             for line in text.splitlines() if line.startswith("checker memory: at most")]
    assert peaks and max(peaks) <= limit_mb, text[-2000:]
