"""Does CI as root turn a skip into a failure, so a test that proves nothing cannot pass?"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _run(tmp_path: Path, *, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "def test_runs():\n    pass\n\n"
        "def test_skips():\n    pytest.skip('sandbox user course-sbx0 does not exist')\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_xfails():\n    assert False\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci_strict", "-q", "-rfs", "-c", os.devnull,
         "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


@pytest.mark.skipif(os.geteuid() != 0, reason="the rule applies to root runs only")
def test_a_skip_fails_under_ci_as_root(tmp_path):
    """Is a skip reported as a failure naming the original reason, and an xfail left alone?"""
    run = _run(tmp_path, ci="true")
    assert run.returncode == 1, run.stdout
    assert "1 failed, 1 passed, 1 xfailed" in run.stdout, run.stdout
    assert "skipped under CI as root, where every test must run: " in run.stdout
    assert "sandbox user course-sbx0 does not exist" in run.stdout


def test_a_skip_stays_a_skip_outside_ci(tmp_path):
    """Without CI=true, does a developer still see an ordinary skip?"""
    run = _run(tmp_path, ci="")
    assert run.returncode == 0, run.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in run.stdout, run.stdout
