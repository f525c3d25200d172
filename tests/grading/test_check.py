"""The checker: a separate, confined pytest process whose report never leaks check code."""

import json
import os
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from autograder.grading.check import run_rubric
from autograder.grading.evidence import CheckInputs

RUBRIC = '''
import socket
from autograder.grading.evidence import NotAssessable, fail

SECRET = "hidden-check-internals-42"

def test_passes(evidence):
    assert evidence.answer("conv1_params") == 416

def test_fails_with_message(evidence):
    fail("conv2_params should count one bias per filter.")

def test_bare_assert(evidence):
    assert evidence.answer("conv1_params") == SECRET

def test_crashes(evidence):
    raise ValueError(SECRET)

def test_not_assessable_here(evidence):
    raise NotAssessable("cnn_model's accuracy cannot be assessed in this grading mode.")

def test_needs_missing(evidence):
    evidence.answer("tl_model_never_defined")

def test_network_is_off(evidence):
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=2).close()
    except OSError:
        return
    fail("network reachable")

def test_cannot_write_course_files(evidence):
    target = "{target}"
    try:
        with open(target, "a") as f:
            f.write("x")
    except OSError:
        return
    fail("wrote " + target)
'''


def inputs(tmp_path: Path) -> CheckInputs:
    facts = tmp_path / "facts"
    facts.mkdir()
    (facts / "answers.json").write_text(json.dumps({"answers": {"conv1_params": 416}, "errors": {}}))
    for p in (tmp_path, facts, facts / "answers.json"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return CheckInputs(facts_dir=facts, key_file=None, grading_dir=tmp_path, validation_dir=tmp_path,
                       weights_file=None, classes=("handbags", "shoes"), image_size_px=64,
                       epochs={"cnn": 1}, report_file=tmp_path / "unused.json")


@pytest.fixture()
def open_tmp(tmp_path_factory):
    """A temp folder the checker's unprivileged uid can read (pytest's own is mode 700)."""
    folder = Path(tempfile.mkdtemp(prefix="course-test-check-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_rubric_outcomes_and_no_leaks(open_tmp):
    """Does each outcome map to a student-safe record, with no hidden check code or output?"""
    tmp_path = open_tmp
    target = tmp_path / "course_file.txt"
    target.write_text("original")
    target.chmod(0o644)
    rubric = tmp_path / "rubric"
    rubric.mkdir()
    (rubric / "test_items.py").write_text(RUBRIC.replace("{target}", str(target)))
    for p in (rubric, rubric / "test_items.py"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    checked, log = run_rubric(inputs(tmp_path), rubric_dir=rubric, timeout_s=300)
    items = checked["items"]
    assert items["passes"]["outcome"] == "passed"
    assert items["fails_with_message"] == {
        "outcome": "failed", "message": "conv2_params should count one bias per filter."}
    assert items["bare_assert"] == {"outcome": "failed", "message": "This item's check did not pass."}
    assert items["crashes"]["outcome"] == "error" and "ValueError" in items["crashes"]["message"]
    assert items["not_assessable_here"] == {
        "outcome": "not_assessable",
        "message": "cnn_model's accuracy cannot be assessed in this grading mode."}
    assert items["needs_missing"] == {"outcome": "missing", "name": "tl_model_never_defined",
                                      "detail": ""}
    assert "hidden-check-internals-42" not in json.dumps(checked)
    if os.geteuid() == 0:  # confinement applies when the grader runs as root
        assert items["network_is_off"]["outcome"] == "passed", log
        assert items["cannot_write_course_files"]["outcome"] == "passed", log
        assert target.read_text() == "original"


def _rubric(folder: Path, source: str, name: str = "test_marked.py") -> Path:
    rubric = folder / "rubric"
    rubric.mkdir()
    (rubric / name).write_text(textwrap.dedent(source))
    for p in (rubric, rubric / name):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return rubric


MARKED_RUBRIC = '''
import pytest
from autograder.grading.evidence import fail

@pytest.mark.visibility("after_due_date")
@pytest.mark.profile_dependent(epochs="cnn", pass_mark=True)
def test_accuracy(evidence):
    fail("cnn_model reached 40%.")

@pytest.mark.profile_dependent(epochs="head")
def test_trained(evidence):
    pass

@pytest.mark.visibility("visible")
def test_plain(evidence):
    pass
'''


def test_rubric_markers_reach_the_records(open_tmp):
    """Does each record carry what its rubric test's markers declare (and nothing for a test
    that declares the default), whatever the test's outcome?"""
    rubric = _rubric(open_tmp, MARKED_RUBRIC)
    checked, log = run_rubric(inputs(open_tmp), rubric_dir=rubric, timeout_s=300)
    assert checked["items"] == {
        "accuracy": {"outcome": "failed", "message": "cnn_model reached 40%.",
                     "visibility": "after_due_date",
                     "profile_dependent": {"epochs": "cnn", "pass_mark": True}},
        "trained": {"outcome": "passed", "message": "Correct.",
                    "profile_dependent": {"epochs": "head", "pass_mark": False}},
        "plain": {"outcome": "passed", "message": "Correct."},
    }, log


def test_an_unknown_visibility_is_an_error_naming_the_file_and_test(open_tmp):
    """Does a visibility Gradescope does not know stop the rubric with a GradingError that
    names the rubric file and the test, rather than grading with a value Gradescope rejects?"""
    from autograder.errors import GradingError

    rubric = _rubric(open_tmp, MARKED_RUBRIC.replace('visibility("visible")',
                                                      'visibility("after_deadline")'))
    with pytest.raises(GradingError) as info:
        run_rubric(inputs(open_tmp), rubric_dir=rubric, timeout_s=300)
    assert info.value.message == (
        f"rubric test test_plain in {rubric / 'test_marked.py'}: unknown visibility "
        "'after_deadline'")
    assert info.value.hint == ("write @pytest.mark.visibility(...) with one of: visible, hidden, "
                               "after_due_date, after_published")


def test_a_bad_profile_dependent_marker_is_an_error_naming_the_test(open_tmp):
    """Is a profile_dependent marker naming a training the profiles do not have refused?"""
    from autograder.errors import GradingError

    rubric = _rubric(open_tmp, MARKED_RUBRIC.replace('epochs="head"', 'epochs="heads"'))
    with pytest.raises(GradingError, match=r"^rubric test test_trained in .*test_marked\.py: "
                                           r"bad profile_dependent marker"):
        run_rubric(inputs(open_tmp), rubric_dir=rubric, timeout_s=300)


def test_a_misspelt_marker_stops_the_run_instead_of_being_ignored(open_tmp):
    """With a misspelt marker name (which would silently leave the item visible), does the
    strict rubric run judge nothing and say why in its log?"""
    rubric = _rubric(open_tmp, MARKED_RUBRIC.replace("mark.visibility(\"after", "mark.visiblity(\"after"))
    checked, log = run_rubric(inputs(open_tmp), rubric_dir=rubric, timeout_s=300)
    assert not checked.get("items")
    assert "'visiblity' not found in `markers` configuration option" in log


EARLY_RUBRIC = '''
import os
from autograder.grading.evidence import fail

def test_reads_the_facts_handed_over_later(evidence, key):
    assert key["marker"] == "the grader's key"
    assert evidence.answer("conv1_params") == 416
'''


def _early_inputs(folder: Path) -> CheckInputs:
    key = folder / "key.json"
    key.write_text(json.dumps({"marker": "the grader's key"}))
    key.chmod(0o644)
    empty = folder / "not-yet"
    empty.mkdir(mode=0o755)
    return CheckInputs(facts_dir=empty, key_file=key, grading_dir=folder, validation_dir=folder,
                       weights_file=None, classes=("handbags", "shoes"), image_size_px=64,
                       epochs={"cnn": 1}, report_file=folder / "unused.json")


def _judge_later(folder: Path, rubric_source: str, *, timeout_s: float = 300):
    """Start a checker on ``rubric_source`` before its facts exist, hand it a facts folder made
    afterwards, let it judge; returns (records, why it stopped, its log, its process)."""
    from autograder.grading.check import start_rubric

    started = start_rubric(_early_inputs(folder), rubric_dir=_rubric(folder, rubric_source),
                           reach=[folder])
    later = folder / "later"
    later.mkdir(mode=0o755)
    try:
        checked = started.finish(inputs(later).facts_dir, timeout_s=timeout_s)
        return checked, started.stopped(), started.log(), started._run.proc
    finally:
        started.cancel()


def test_a_checker_started_before_the_notebook_judges_the_facts_handed_to_it(open_tmp):
    """The grader starts the checker while the notebook runs (issue 12): does it judge the facts
    folder it is handed when the run is over, one that did not exist when it started, and say in
    the staff log how long it waited?"""
    checked, _, log, _ = _judge_later(open_tmp, EARLY_RUBRIC)
    assert checked["items"] == {"reads_the_facts_handed_over_later": {
        "outcome": "passed", "message": "Correct."}}, log
    assert "checker warmed up in" in log and "s for the facts" in log


DRAWING_RUBRIC = '''
import sys
from autograder.grading.evidence import fail

def test_keras_came_without_matplotlib_and_matplotlib_still_imports(evidence):
    before = sorted(m for m in ("keras", "matplotlib") if m in sys.modules)
    import matplotlib.pyplot  # a rubric may draw
    if before != ["keras"] or matplotlib.pyplot.figure is None:
        fail(f"imported before the check: {before}")
'''


@pytest.mark.parametrize("early", [True, False], ids=["started-early", "started-after"])
def test_the_checker_imports_keras_without_matplotlib_and_a_rubric_may_still_draw(open_tmp, early):
    """Keras imports matplotlib.pyplot at start-up, and in the checker's fresh config folder
    matplotlib rebuilds its font list: CPU every submission pays for drawing nothing (issue 12).
    Does a checker, started early or after the notebook, judge with Keras imported and
    matplotlib not, and can a rubric test still import matplotlib itself?"""
    if early:
        checked, _, log, _ = _judge_later(open_tmp, DRAWING_RUBRIC)
    else:
        checked, log = run_rubric(inputs(open_tmp), rubric_dir=_rubric(open_tmp, DRAWING_RUBRIC),
                                  timeout_s=300)
    assert checked["items"] == {"keras_came_without_matplotlib_and_matplotlib_still_imports": {
        "outcome": "passed", "message": "Correct."}}, log


def test_a_checker_no_submission_needs_is_stopped_and_leaves_nothing(open_tmp):
    """A submission that never ran (refused, unreadable) cancels its waiting checker: is the
    process gone and its private folder removed?"""
    from autograder.grading.check import start_rubric

    rubric = _rubric(open_tmp, EARLY_RUBRIC)
    started = start_rubric(_early_inputs(open_tmp), rubric_dir=rubric, reach=[open_tmp])
    run = started._run
    started.cancel()
    assert run.proc.returncode is not None
    assert not run.private.exists()
    started.cancel()  # twice is harmless (the grader's finally after a finish)


@pytest.mark.parametrize("line, why", [
    (b"facts please\n", "the grader sent no facts folder"),
    (b'{"folder": "/tmp"}\n', "the grader sent no facts folder"),
    (b'{"facts_dir": "later"}\n', "the grader sent a relative facts folder later"),
])
def test_a_checker_handed_no_usable_facts_folder_judges_nothing(open_tmp, line, why):
    """If the line on the checker's pipe is not a facts folder it can use, does the checker judge
    nothing (rather than the folder it was started with) and say why in the staff log?"""
    import os

    from autograder.grading.check import start_rubric

    rubric = _rubric(open_tmp, EARLY_RUBRIC)
    started = start_rubric(_early_inputs(open_tmp), rubric_dir=rubric, reach=[open_tmp])
    os.write(started._go, line)  # only the grader holds the pipe: this is a grader bug's line
    try:
        checked = started.finish(open_tmp / "never-read", timeout_s=300)
        log = started.log()
    finally:
        started.cancel()
    assert not checked.get("items"), checked
    assert why in log


NICENESS_RUBRIC = '''
import os
from autograder.grading.evidence import CheckInputs, fail

def _niceness():
    """(this thread's niceness, every thread's, its autogroup's) in the checker process."""
    threads = sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")})
    group = open("/proc/self/autogroup").read().split()[-1]
    return os.getpriority(os.PRIO_PROCESS, 0), threads, int(group)

# Imported while the checker waits for the facts (before its warm-up imports TensorFlow).
WAITING = _niceness()
open(os.path.join(CheckInputs.from_env().grading_dir, "signals", "waiting"), "w").close()

def test_niced_while_waiting_not_while_judging(evidence):
    judging = _niceness()  # TensorFlow's threads exist by now
    if WAITING != (19, [19], 19) or judging != (0, [0], 0):
        fail(f"waiting {WAITING}, judging {judging}")
'''


def test_a_checker_waits_at_low_priority_and_judges_at_normal_priority(open_tmp):
    """While the notebook runs, the early checker's warm-up (seconds of imports) must take only
    the CPU the notebook leaves idle (issue 12): does it wait at niceness 19, for its threads and
    its session's scheduling group (sessions share the CPU as equals on this machine), and judge
    at priority 0 in every thread once the facts are handed over? (As root, as grading runs.)"""
    from autograder.grading.check import start_rubric

    if os.geteuid() != 0:
        pytest.fail("run as root: the grader lowers and restores the checker's priority as root")
    rubric = _rubric(open_tmp, NICENESS_RUBRIC)
    signals = open_tmp / "signals"
    signals.mkdir()
    signals.chmod(0o777)
    started = start_rubric(_early_inputs(open_tmp), rubric_dir=rubric, reach=[open_tmp])
    later = open_tmp / "later"
    later.mkdir(mode=0o755)
    try:
        deadline = time.monotonic() + 120
        while not (signals / "waiting").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        checked = started.finish(inputs(later).facts_dir, timeout_s=300)
        log = started.log()
    finally:
        started.cancel()
    assert checked["items"] == {"niced_while_waiting_not_while_judging": {
        "outcome": "passed", "message": "Correct."}}, checked


MODEL_RUBRIC = '''
from autograder.grading.evidence import Missing, fail

def test_the_model_judged(evidence):
    try:
        model = evidence.model("m")
    except Missing:
        fail("m: missing")
    fail(f"m has {model.count_params()} parameters")
'''


def _saved_model(path: Path, units: int) -> int:
    """A small .keras file the checker's uid can read; returns its parameter count."""
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    model.save(path)
    path.chmod(0o644)
    return model.count_params()


def _judge_with_offers(folder: Path, offers: dict[str, Path], facts_models: dict[str, Path]
                       ) -> tuple[str, str]:
    from autograder.grading.check import start_rubric

    started = start_rubric(_early_inputs(folder), rubric_dir=_rubric(folder, MODEL_RUBRIC),
                           reach=[folder])
    facts = folder / "facts"
    try:
        for name, path in offers.items():
            started.offer_model(name, path)
        (facts / "answers.json").write_text(json.dumps({"answers": {}, "errors": {}}))
        (facts / "answers.json").chmod(0o644)
        checked = started.finish(facts, models=facts_models, timeout_s=300)
        log = started.log()
    finally:
        started.cancel()
    return checked["items"]["the_model_judged"]["message"], log


def test_a_model_offered_while_the_export_runs_is_judged_when_it_is_the_facts_model(open_tmp):
    """The grader hands the checker each model file the export finished, to load while the other
    models are written (issue 12): when that file is the facts folder's model, is it the model
    judged, and does the staff log say it was loaded early?"""
    path = open_tmp / "facts" / "models" / "m.keras"
    count = _saved_model(path, units=5)
    message, log = _judge_with_offers(open_tmp, {"m": path}, {"m": path})
    assert message == f"m has {count} parameters", log
    assert "loaded while the export ran: m" in log


def test_an_early_load_never_stands_in_for_a_different_facts_model(open_tmp):
    """If the facts end up with another file for the model (a kernel lost during the export, its
    cells replayed) or none (an export that did not finish), is the model judged the facts
    folder's, never the one loaded early?"""
    early = open_tmp / "first-run" / "models" / "m.keras"
    _saved_model(early, units=5)
    final = open_tmp / "facts" / "models" / "m.keras"
    count = _saved_model(final, units=7)
    message, log = _judge_with_offers(open_tmp, {"m": early}, {"m": final})
    assert message == f"m has {count} parameters", log
    assert "loaded while the export ran" not in log
    final.unlink()
    shutil.rmtree(open_tmp / "rubric")
    (open_tmp / "not-yet").rmdir()
    message, log = _judge_with_offers(open_tmp, {"m": early}, {})
    assert message == "m: missing", log


LINGERING_RUBRIC = '''
import os, threading, time
from autograder.grading.evidence import CheckInputs

RELEASE = os.path.join(CheckInputs.from_env().grading_dir, "signals", "release")

def test_judged(evidence):
    def linger():  # not a daemon: the checker cannot exit before the file appears
        while not os.path.exists(RELEASE):
            time.sleep(0.05)
    threading.Thread(target=linger).start()
'''


def test_the_grader_scores_from_the_report_before_the_checker_has_exited(open_tmp):
    """Once the checker's report is written the grader has what it scores (issue 12: pytest's
    summary and the process's exit were a third of a second of every grade): does finish()
    return the records while the checker is still running, and log() give its whole summary
    once it has exited?"""
    from autograder.grading.check import start_rubric

    signals = open_tmp / "signals"
    signals.mkdir()
    signals.chmod(0o777)
    started = start_rubric(_early_inputs(open_tmp), rubric_dir=_rubric(open_tmp, LINGERING_RUBRIC),
                           reach=[open_tmp])
    later = open_tmp / "later"
    later.mkdir(mode=0o755)
    try:
        checked = started.finish(inputs(later).facts_dir, timeout_s=300)
        assert checked["items"] == {"judged": {"outcome": "passed", "message": "Correct."}}
        assert started._run.proc.poll() is None  # still waiting for its thread
        (signals / "release").touch()
        log = started.log()
        assert started._run.proc.returncode is not None
    finally:
        started.cancel()
    assert "1 passed" in log


def _model_asking_for(path: Path, units: int) -> None:
    """A .keras file of a few kB whose config.json declares a ``units`` x ``units`` Dense layer
    (the weights file still holds an 8 x 8 one): Keras allocates the declared kernel while it
    loads, before it reads a weight."""
    import zipfile

    _saved_model(path, units=8)
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    config = files["config.json"].decode()
    assert '"units": 8' in config
    files["config.json"] = config.replace('"units": 8', f'"units": {units}').replace(
        "[null, 3]", f"[null, {units}]").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    path.chmod(0o644)


@pytest.mark.skipif(os.geteuid() != 0, reason="the checker's cgroup needs root")
def test_a_model_file_asking_for_more_memory_than_allowed_ends_only_its_checker(open_tmp):
    """A crafted model file (16 GiB of declared weights) loaded by a checker held to 1024 MB:
    is the checker ended by its own cgroup, the grader told it ran out of memory (not a crash
    of its own), and the staff log given the checker's peak, within the limit?"""
    from autograder.course.settings import Limits
    from autograder.grading.check import Stopped, start_rubric

    _model_asking_for(open_tmp / "facts" / "models" / "m.keras", units=65536)
    started = start_rubric(_early_inputs(open_tmp), rubric_dir=_rubric(open_tmp, MODEL_RUBRIC),
                           reach=[open_tmp], limits=Limits(memory_mb=1024))
    facts = open_tmp / "facts"
    try:
        (facts / "answers.json").write_text(json.dumps({"answers": {}, "errors": {}}))
        (facts / "answers.json").chmod(0o644)
        checked = started.finish(facts, timeout_s=300)
        stopped = started.stopped()
        log = started.log()
        group = started._run.cgroup
    finally:
        started.cancel()
    assert checked == {}
    assert stopped == Stopped("memory", "1,024 MB"), log
    peak = float(log.split("checker memory: at most ")[1].split(" MB")[0].replace(",", ""))
    assert 0 < peak <= 1024
    assert group is not None and not any(folder.exists() for folder in group.dirs)


CRASHING_RUBRIC = '''
import os, signal

def test_crashes_the_process(evidence):
    os.kill(os.getpid(), signal.SIGSEGV)
'''


def test_a_checker_that_dies_says_how(open_tmp):
    """A checker killed by a signal before its report (a loader bug a crafted file found) is
    told apart from one that ran out of memory or time: the grader gets the signal's name."""
    from autograder.grading.check import Stopped

    checked, stopped, _, _ = _judge_later(open_tmp, CRASHING_RUBRIC)
    assert checked == {}
    assert stopped == Stopped("crash", "signal SIGSEGV")


SLEEPING_RUBRIC = '''
import time

def test_never_ends(evidence):
    time.sleep(3600)
'''


def test_a_checker_past_its_time_out_is_killed_and_says_so(open_tmp):
    """A checker still judging at its time-out (a model that takes forever to build) is
    killed there, and the grader is told it ran out of time, with the limit."""
    from autograder.grading.check import Stopped

    begun = time.monotonic()
    checked, stopped, _, proc = _judge_later(open_tmp, SLEEPING_RUBRIC, timeout_s=8)
    assert checked == {}
    assert stopped == Stopped("time", "8 s")
    assert proc.returncode is not None and time.monotonic() - begun < 60
