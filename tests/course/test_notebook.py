"""The reference (source) notebook, executed: every graded name exists with the right value.

The reduced profile runs here in a plain kernel, as an instructor runs it. The full profile
(224 px), which pins the recitation's numbers, runs once in the suite, sandboxed, calibrated
and graded: tests/grading/test_grade_full.py checks the same numbers there, from the trusted
export of the reference's models.
Stand-in weights throughout: the ImageNet file is not available to CI.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from autograder.course.config import Course, load_course
from autograder.course.datasets import build_dataset, student_splits_dir

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "cnn_transfer"
FACTS_MARK = "COURSE-TEST-FACTS::"

# Appended to a copy of the notebook: reads the kernel's variables into one JSON line.
# (Tests may trust the reference kernel; graded runs never do this.)
FACTS_CELL = r'''
import json as _json, os as _os, tempfile as _tempfile
import numpy as _np

def _plain(value):
    if isinstance(value, tuple):
        return {"tuple": [_plain(v) for v in value]}
    if isinstance(value, (_np.integer,)):
        return {"numpy": int(value)}
    return value

_facts = {"answers": {}, "models": {}, "histories": {}, "undefined": []}
for _name in ANSWER_NAMES:
    if _name in globals():
        _facts["answers"][_name] = _plain(globals()[_name])
    else:
        _facts["undefined"].append(_name)
for _name in MODEL_NAMES:
    if _name not in globals():
        _facts["undefined"].append(_name)
        continue
    _m = globals()[_name]
    _path = _os.path.join(_tempfile.mkdtemp(), _name + ".keras")
    _m.save(_path)
    _loaded = keras.models.load_model(_path, safe_mode=True)
    _facts["models"][_name] = {
        "input_shape": list(_m.input_shape), "output_shape": list(_m.output_shape),
        "params": int(_m.count_params()),
        "trainable": int(sum(_np.prod(w.shape) for w in _m.trainable_weights)),
        "loaded_trainable": int(sum(_np.prod(w.shape) for w in _loaded.trainable_weights)),
        "loaded_loss": _loaded.loss if isinstance(_loaded.loss, str) else repr(_loaded.loss),
        "layers": [type(l).__name__ for l in _m.layers],
    }
for _name in HISTORY_NAMES:
    if _name not in globals():
        _facts["undefined"].append(_name)
        continue
    _h = getattr(globals()[_name], "history", globals()[_name])
    _facts["histories"][_name] = {k: [float(v) for v in vs] for k, vs in _h.items()}
_facts["ft_tail_max_diff"] = ft_tail_max_diff
print("COURSE-TEST-FACTS::" + _json.dumps(_facts))
'''


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"tuple"}:
        return tuple(_decode(v) for v in value["tuple"])
    return value


def execute_reference(course: Course, *, profile: str, work: Path) -> dict[str, Any]:
    """Run the source notebook (plus the facts cell) in a fresh kernel; return the facts."""
    from nbclient import NotebookClient

    if not (student_splits_dir(course) / "train").is_dir():
        build_dataset(course)
    assignment = course.config.assignment(ASSIGNMENT)
    source = course.source_dir(ASSIGNMENT)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("course_helpers.py", "settings.json"):
        shutil.copy2(source / name, work / name)
    nb = nbformat.read(source / assignment.notebook, as_version=4)
    names = (f"ANSWER_NAMES = {list(assignment.answer_names)!r}\n"
             f"MODEL_NAMES = {list(assignment.model_names)!r}\n"
             f"HISTORY_NAMES = {list(assignment.history_names)!r}\n")
    nb.cells.append(nbformat.v4.new_code_cell(names + FACTS_CELL))
    env = {**os.environ, "COURSE_PROFILE": profile, "COURSE_WEIGHTS_MODE": "stand-in",
           "COURSE_DATA_DIR": str(student_splits_dir(course)),
           "COURSE_WEIGHTS_DIR": str(work / "no-weights"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    client.execute(env=env)
    nbformat.write(nb, work / "executed.ipynb")
    stdout = [o.get("text", "") for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("name") == "stdout"]
    facts_line = [line for text in stdout for line in text.splitlines()
                  if line.startswith(FACTS_MARK)]
    facts = json.loads(facts_line[-1][len(FACTS_MARK):])
    facts["answers"] = {k: _decode(v) for k, v in facts["answers"].items()}
    facts["stdout"] = "".join(stdout)
    return facts


@pytest.fixture(scope="module")
def course() -> Course:
    return load_course(REPO)


@pytest.fixture(scope="module")
def reduced(course: Course, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return execute_reference(course, profile="reduced", work=tmp_path_factory.mktemp("reduced"))


def _check_common(facts: dict[str, Any], course: Course, *, profile: str) -> None:
    p = course.config.profiles[profile]
    size = p.image_size_px
    a = facts["answers"]
    assert facts["undefined"] == []
    assert (a["conv1_params"], a["conv2_params"]) == (416, 4128)
    assert (a["shape_stride1_valid"], a["shape_stride2_valid"], a["shape_stride2_same"]) == (
        (223, 223, 32), (112, 112, 32), (112, 112, 32))
    assert a["conv1_kernel_shape"] == (2, 2, 3, 32)
    cnn = facts["models"]["cnn_model"]
    assert a["frozen_non_trainable_params"] == 416 + 4128
    assert a["frozen_trainable_params"] == cnn["params"] - 4544
    assert cnn["trainable"] == cnn["params"]  # unfrozen again before export
    assert cnn["input_shape"] == [None, size, size, 3] and cnn["output_shape"] == [None, 1]
    assert (a["backbone_layers"], a["backbone_params"]) == (175, 23_587_712)
    assert a["embedding_shape"] == (size // 32, size // 32, 2048)
    head = (size // 32) ** 2 * 2048 * 256 + 256 + 257
    tl = facts["models"]["tl_model"]
    assert tl["params"] == head and tl["input_shape"] == [None, *a["embedding_shape"]]
    ft = facts["models"]["ft_model"]
    assert ft["input_shape"] == [None, size, size, 3] and ft["output_shape"] == [None, 1]
    assert a["ft_trainable_params"] == ft["trainable"] == ft["loaded_trainable"]
    assert ft["params"] == 23_587_712 + head
    assert "Lambda" not in ft["layers"]
    assert all(m["loaded_loss"] == "binary_crossentropy" for m in facts["models"].values())
    assert a["chosen_model"] in ("tl", "ft")
    h = facts["histories"]
    for name, epochs in (("cnn_history", p.cnn_epochs), ("tl_history", p.head_epochs),
                         ("ft_history", p.finetune_epochs)):
        assert set(h[name]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}, name
        assert len(h[name]["val_accuracy"]) == epochs, name
    tl_val, ft_val = h["tl_history"]["val_accuracy"][-1], h["ft_history"]["val_accuracy"][-1]
    assert a["chosen_model"] == ("ft" if ft_val > tl_val else "tl")  # chosen on validation
    assert facts["ft_tail_max_diff"] < 1e-4
    assert "STAND-IN WEIGHTS (untrained)" in facts["stdout"]


@pytest.mark.kernel
def test_reference_defines_every_graded_name(reduced: dict[str, Any], course: Course) -> None:
    """At the reduced profile, is every answer, model and history defined with the right value?"""
    _check_common(reduced, course, profile="reduced")
    side = course.config.profiles["reduced"].image_size_px // 32  # ResNet50 downsamples by 32
    assert reduced["answers"]["ft_trainable_params"] == 4_465_664 + side * side * 2048 * 256 + 513


@pytest.mark.kernel
def test_public_checks_pass_on_the_reference(reduced: dict[str, Any], course: Course) -> None:
    """Did every public check print its well-formed line (none raised)?"""
    lines = reduced["stdout"].splitlines()
    for item in course.config.assignment(ASSIGNMENT).points:
        assert any(line.startswith(f"{item}: ") and "well-formed" in line for line in lines), item


# ---------------------------------------------------------------- course_helpers, no kernel


@pytest.fixture
def helpers(course: Course, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The shipped course_helpers module, imported from a copy with its settings.json."""
    import importlib.util

    for name in ("course_helpers.py", "settings.json"):
        shutil.copy2(course.source_dir(ASSIGNMENT) / name, tmp_path / name)
    for var in ("COURSE_PROFILE", "COURSE_WEIGHTS_MODE", "COURSE_WEIGHTS_DIR", "COURSE_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    spec = importlib.util.spec_from_file_location("course_helpers_under_test",
                                                  tmp_path / "course_helpers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_helpers_settings_follow_the_profile(helpers: Any, course: Course,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Does settings() give the default profile, and the reduced one under $COURSE_PROFILE?"""
    assert helpers.settings().image_size_px == course.config.profiles["full"].image_size_px
    monkeypatch.setenv("COURSE_PROFILE", "reduced")
    s = helpers.settings()
    reduced = course.config.profiles["reduced"]
    assert (s.profile, s.image_size_px, s.cnn_epochs) == (
        "reduced", reduced.image_size_px, reduced.cnn_epochs)
    assert s.classes == course.config.dataset.classes and s.batch_size == 32
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(helpers.CourseSetupError, match="reduced"):
        helpers.settings()


def test_helpers_weights_modes(helpers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Stand-in: banner and None (or the seeded stand-in file); ImageNet: verified or a clear error."""
    import hashlib

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(cache))
    monkeypatch.setenv("COURSE_WEIGHTS_MODE", "stand-in")
    assert helpers.resnet50_weights() is None
    assert "STAND-IN WEIGHTS (untrained)" in capsys.readouterr().out
    standin = cache / helpers._raw_settings()["weights"]["standin_file_name"]
    standin.write_bytes(b"seeded")
    assert helpers.resnet50_weights() == standin
    monkeypatch.delenv("COURSE_WEIGHTS_MODE")
    with pytest.raises(helpers.CourseSetupError, match="course weights import FILE"):
        helpers.resnet50_weights()
    real = cache / helpers._raw_settings()["weights"]["file_name"]
    real.write_bytes(b"not the real file")
    with pytest.raises(helpers.CourseSetupError, match="corrupt"):
        helpers.resnet50_weights()
    raw = helpers._raw_settings()
    monkeypatch.setitem(raw["weights"], "md5", hashlib.md5(b"not the real file").hexdigest())
    helpers._verified_weights.cache_clear()
    assert helpers.resnet50_weights() == real


def test_helpers_data_dir(helpers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does data_dir() honour $COURSE_DATA_DIR and say what is missing?"""
    for split in ("train", "validation", "test"):
        (tmp_path / "d" / split).mkdir(parents=True)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "d"))
    assert helpers.data_dir() == tmp_path / "d"
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(helpers.CourseSetupError, match="train, validation, test"):
        helpers.data_dir()


def test_public_checks_are_friendly(helpers: Any, course: Course) -> None:
    """Do the public checks name the variable and the fix, without revealing answers?"""
    ns: dict[str, Any] = {"conv1_params": 416.0, "conv2_params": 4128}
    _, problems = helpers._checks(ns, "q1_conv_params")
    assert problems == ["your conv1_params should be an int (a whole number), not float"]
    _, problems = helpers._checks({}, "q5_model_choice")
    assert problems == ["chosen_model is not defined yet: run the cells above that define it"]
    _, problems = helpers._checks({"chosen_model": "test"}, "q5_model_choice")
    assert problems and "4128" not in " ".join(problems)
    _, problems = helpers._checks({"shape_stride1_valid": (223, 223),
                                   "shape_stride2_valid": (112, 112, 32),
                                   "shape_stride2_same": (112, 112, 32.0)}, "q1_output_shapes")
    assert len(problems) == 2 and all("tuple of 3 positive ints" in p for p in problems)
    for item in course.config.assignment(ASSIGNMENT).points:
        helpers._checks({}, item)  # every rubric item has a public check
    with pytest.raises(KeyError):
        helpers._checks({}, "q0_unknown")


def test_numpy_integers_are_well_formed_answers(helpers: Any) -> None:
    """Counts and shapes given as NumPy integers (what np.prod or an array's shape give) pass the
    public check, as they pass the grader; floats and bools do not."""
    import numpy as np

    ns = {"conv1_params": np.int64(416), "conv2_params": np.prod([129, 32]),
          "shape_stride1_valid": tuple(np.array([223, 223, 32])),
          "shape_stride2_valid": [112, 112, 32], "shape_stride2_same": (112, 112, 32)}
    assert helpers._checks(ns, "q1_conv_params")[1] == []
    assert helpers._checks(ns, "q1_output_shapes")[1] == []
    for bad in (416.0, np.float32(416), True, "416", np.array([416])):
        assert helpers.int_answer_problem("conv1_params", bad), bad
    assert helpers.int_answer_problem("conv1_params", np.int64(-1)) == \
        "your conv1_params should not be negative"


def test_the_grader_and_the_public_check_share_one_rule(helpers: Any) -> None:
    """The rubric judges well-formedness with the released course_helpers' own functions, so a
    cell the public check turns green is well-formed for the grader too, and the other way round."""
    import inspect

    from autograder.rubric.cnn_transfer.shapes import answer_rules

    rules = answer_rules()
    for name in ("is_whole_number", "int_answer_problem", "shape_answer_problem",
                 "choice_answer_problem"):
        assert inspect.getsource(getattr(rules, name)) == inspect.getsource(getattr(helpers, name))
    released = (REPO / "release" / ASSIGNMENT / "course_helpers.py").read_text()
    assert released == (REPO / "source" / ASSIGNMENT / "course_helpers.py").read_text()
    for value in (416, 416.0, [223, 223, 32], (223, 223), None):
        assert (rules.int_answer_problem("x", value) is None) == \
            (helpers.int_answer_problem("x", value) is None)
