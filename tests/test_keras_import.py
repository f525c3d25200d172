"""Importing Keras through the kit: TensorFlow's start-up notices stay off the console, every
other line written to stderr meanwhile still shows, and matplotlib is not loaded with it."""

from __future__ import annotations

import os
import subprocess
import sys

from autograder.keras_import import START_UP_NOTICES, _start_up_notices_dropped


def test_start_up_notices_are_dropped_and_other_lines_kept(capfd):
    with _start_up_notices_dropped():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n")
        os.write(2, b"I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"I0000 00:00:1.0 1 cpu_feature_guard.cc:227] This TensorFlow binary is "
                    b"optimized to use available CPU instructions in performance-critical "
                    b"operations.\nTo enable the following instructions: AVX2 FMA, in other "
                    b"operations, rebuild TensorFlow with the appropriate compiler flags.\n")
        os.write(2, b"E0000 something real went wrong\n")
    out, err = capfd.readouterr()
    assert err == "E0000 something real went wrong\n"
    assert not any(notice in out + err for notice in START_UP_NOTICES)


def test_a_fresh_import_writes_no_start_up_notice_and_leaves_matplotlib_out():
    """The import as a `course` command does it, in a process of its own (where TensorFlow
    really prints its notices: on this kind of machine even with TF_CPP_MIN_LOG_LEVEL=2)."""
    code = ("import sys\nfrom autograder.keras_import import import_keras\n"
            "keras = import_keras()\nprint(keras.__name__, 'matplotlib' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["keras", "False"]
    assert not any(notice in done.stderr for notice in START_UP_NOTICES), done.stderr
