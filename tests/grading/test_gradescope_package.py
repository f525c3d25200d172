"""The Gradescope package of an assignment without images or backbone ships neither: no split,
no weights step in setup.sh, no --weights-mode in run_autograder (whose argparse would refuse
the "none" mode). Built without running anything."""

from __future__ import annotations

import zipfile
from pathlib import Path

from autograder.course.config import load_course
from autograder.grading.gradescope import build_package
from autograder.grading.pipeline import NO_WEIGHTS

REPO = Path(__file__).resolve().parents[2]


def test_a_package_without_backbone_or_images_needs_neither(tmp_path):
    course = load_course(REPO)
    key = tmp_path / f"reduced-{NO_WEIGHTS}.json"
    key.write_text("{}")
    out = build_package(course, "param_counting", profile="reduced", weights_mode=NO_WEIGHTS,
                        key_file=key, weights_file=None, out=tmp_path / "pc.zip")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        setup = zf.read("setup.sh").decode()
        run = zf.read("run_autograder").decode()
    assert not [n for n in names if "/datasets/" in n or "/weights/" in n and not n.endswith("/")]
    assert any(n.endswith("release/param_counting/param_counting.ipynb") for n in names)
    assert any(n.endswith(f"answer_keys/param_counting/reduced-{NO_WEIGHTS}.json") for n in names)
    assert "grader_weights" not in setup
    assert "--weights-mode" not in run and "grade param_counting" in run


def test_a_backbone_package_still_prepares_its_weights(tmp_path):
    course = load_course(REPO)
    key = tmp_path / "reduced-stand-in.json"
    key.write_text("{}")
    out = build_package(course, "cnn_transfer", profile="reduced", weights_mode="stand-in",
                        key_file=key, weights_file=None, out=tmp_path / "cnn.zip")
    with zipfile.ZipFile(out) as zf:
        assert "grader_weights(load_course(), mode='stand-in')" in zf.read("setup.sh").decode()
        assert "--weights-mode stand-in" in zf.read("run_autograder").decode()
        assert any("/datasets/hidden/" in n for n in zf.namelist())
