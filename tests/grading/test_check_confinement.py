"""The confined checker's own temporary space: does what a loader leaves behind stay out of
the host's /tmp, within a size cap, and vanish when the checker ends?"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autograder.grading import check
from autograder.grading.evidence import CheckInputs
from e2e_support import open_dir

MARK = "left-behind-by-the-checker"

# A stand-in for a crafted .keras file whose loading leaves 32 MiB of temporary files.
RUBRIC = f'''
import errno, os, tempfile

def test_leaves_files_in_tmp():
    where = tempfile.gettempdir()
    assert where != "/tmp", where
    with open(os.path.join(where, "{MARK}"), "wb") as f:
        f.write(b"\\0" * (32 << 20))

def test_tmp_is_capped():
    try:
        with open(os.path.join(tempfile.gettempdir(), "{MARK}-big"), "wb") as f:
            for _ in range({check.CHECK_TMP_MB} + 64):
                f.write(b"\\0" * (1 << 20))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    else:
        raise AssertionError("wrote past the cap")
'''


@pytest.fixture
def rubric_dir():
    folder = open_dir("course-rubric-test-")
    (folder / "test_tmp.py").write_text(RUBRIC)
    (folder / "test_tmp.py").chmod(0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _left_behind() -> list[Path]:
    """Files of ours anywhere under the host's /tmp (os.walk: other tests' temporary folders
    may vanish while we look, which rglob would raise on)."""
    found = []
    for folder, dirs, files in os.walk("/tmp"):
        dirs[:] = [d for d in dirs if not d.startswith("pytest-of-")]
        found += [Path(folder) / f for f in files if f.startswith(MARK)]
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="the tmpfs cap needs root (its own mount namespace)")
def test_checker_temp_files_are_capped_and_removed(rubric_dir):
    """Are a checker's temporary files kept in its own capped space and gone afterwards?"""
    before = _left_behind()
    inputs = CheckInputs(facts_dir=rubric_dir, key_file=None, grading_dir=rubric_dir,
                         validation_dir=rubric_dir, weights_file=None, classes=("a", "b"),
                         image_size_px=32, epochs={}, report_file=rubric_dir / "unused.json")
    records, log = check.run_rubric(inputs, rubric_dir=rubric_dir, timeout_s=300)
    outcomes = {name: r["outcome"] for name, r in records.get("items", {}).items()}
    assert outcomes == {"leaves_files_in_tmp": "passed", "tmp_is_capped": "passed"}, log
    assert _left_behind() == before == []


SLEEPER = '''
def test_sleeps():
    import time
    time.sleep(120)  # MARK-sleeper
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="the confined checker runs as root's child")
def test_a_checker_dies_with_its_grader(rubric_dir):
    """When the grader is killed with -9 mid-check, does its checker die too, instead of
    running to its end as an orphan?"""
    import signal
    import subprocess
    import sys
    import time

    (rubric_dir / "test_tmp.py").write_text(SLEEPER.replace("MARK", MARK))
    grader = subprocess.Popen([sys.executable, "-c", (
        "from pathlib import Path\n"
        "from autograder.grading import check\n"
        "from autograder.grading.evidence import CheckInputs\n"
        f"d = Path({str(rubric_dir)!r})\n"
        "i = CheckInputs(facts_dir=d, key_file=None, grading_dir=d, validation_dir=d,\n"
        "                weights_file=None, classes=('a', 'b'), image_size_px=32, epochs={},\n"
        "                report_file=d / 'unused.json')\n"
        "check.run_rubric(i, rubric_dir=d, timeout_s=300)\n")])

    def checkers() -> str:
        return subprocess.run(["pgrep", "-u", "nobody", "-f", str(rubric_dir)],
                              capture_output=True, text=True).stdout.strip()

    try:
        deadline = time.monotonic() + 60
        while not checkers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checkers(), "the checker never started"
        grader.send_signal(signal.SIGKILL)
        grader.wait()
        deadline = time.monotonic() + 10
        while checkers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checkers() == ""
    finally:
        grader.kill()
        subprocess.run(["pkill", "-9", "-u", "nobody", "-f", str(rubric_dir)])
