"""Scoring is pure: records + execution facts -> points and reasons."""

import dataclasses
from pathlib import Path

from autograder.course.settings import Limits, Profile
from autograder.facts import CellRun, ExecutionResult
from autograder.grading import messages
from autograder.grading import score, submission
from autograder.grading.score import explain_missing, score_items, total
from autograder.grading.submission import CellNames

LIMITS = Limits(cell_timeout_s=240.0, memory_mb=6144, notebook_budget_s=900.0)
ROOT = Path(__file__).resolve().parents[2]
POINTS = {"q1_conv_params": 2, "q2_cnn_architecture": 3, "q2_cnn_accuracy": 2}


def run(*cells: CellRun, status: str = "finished") -> ExecutionResult:
    return ExecutionResult(student="s", cells=tuple(cells), kernel_status=status, wall_s=1.0)


def test_passed_items_get_their_points_and_others_keep_theirs():
    """Does one failing item leave the other items' points alone (partial credit)?"""
    records = {
        "q1_conv_params": {"outcome": "passed"},
        "q2_cnn_architecture": {"outcome": "failed", "message": "Layer conv2d has 8 params."},
        "q2_cnn_accuracy": {"outcome": "passed"},
    }
    items = score_items(records, points=POINTS, execution=run(), cell_sources=[], limits=LIMITS)
    assert [(i.name, i.score) for i in items] == [
        ("q1_conv_params", 2.0), ("q2_cnn_architecture", 0.0), ("q2_cnn_accuracy", 2.0)]
    assert items[1].message == "Layer conv2d has 8 params."
    assert total(items) == (4.0, 7.0)


def test_an_item_the_checker_never_reached_says_so():
    """Is an item missing from the checker's report explained, not silently zero?"""
    items = score_items({}, points={"q1_conv_params": 2}, execution=run(), cell_sources=[],
                        limits=LIMITS)
    assert items[0].score == 0 and items[0].message == messages.CHECK_DID_NOT_RUN


def test_missing_name_points_at_the_cell_that_hit_the_timeout():
    """When cnn_model's cell timed out, does the reason name that cell and the limit?"""
    sources = ["import keras", "cnn_model = build()\ncnn_model.fit(...)", "print('done')"]
    execution = run(
        CellRun(0, None, "ok", 3.0),
        CellRun(1, "q2-cnn", "timeout", 240.0, limit="cell_timeout_s"),
        CellRun(2, None, "ok", 0.1),
    )
    reason = explain_missing("cnn_model", "", execution=execution, cell_sources=sources,
                             limits=LIMITS)
    assert reason == ("cnn_model was not available because cell 2 (q2-cnn) ran longer than the "
                      "240 s limit per cell and was interrupted.")


def test_missing_name_after_an_earlier_memory_kill_names_where_the_run_stopped():
    """When the kernel was killed before the defining cell, does the reason say where and why?"""
    sources = ["x = [0] * 10**10", "tl_model = make()"]
    execution = run(CellRun(0, None, "killed", 5.0, limit="memory_mb"),
                    CellRun(1, None, "not-run", 0.0), status="oom")
    reason = explain_missing("tl_model", "", execution=execution, cell_sources=sources,
                             limits=LIMITS)
    assert reason == ("tl_model was not available because the notebook stopped at cell 1, which "
                      "used more than the 6144 MB memory limit and the kernel was stopped, before "
                      "the cell that defines it ran.")


def test_never_assigned_name_gets_the_plain_explanation():
    """Is a name no cell assigns explained as 'not defined'?"""
    reason = explain_missing("chosen_model", "", execution=run(CellRun(0, None, "ok", 1.0)),
                             cell_sources=["print(1)"], limits=LIMITS)
    assert reason == messages.NOT_DEFINED.format(name="chosen_model")


def test_a_question_left_as_released_says_to_replace_the_placeholder():
    """Is a name whose answer cell still raises the release's NotImplementedError explained as
    that placeholder, naming the cell, not as a name 'not defined'?"""
    import json

    release = ROOT / "release" / "param_counting" / "param_counting.ipynb"
    sources = ["".join(c["source"]) if c["cell_type"] == "code" else ""
               for c in json.loads(release.read_text())["cells"]]
    (index,) = [i for i, src in enumerate(sources) if "print(dense_params, conv_params)" in src]
    cells = [CellRun(i, None, "ok", 0.1) for i in range(index)]
    cells.append(CellRun(index, "a_dense_conv_params", "error", 0.1, message="NotImplementedError: "))
    reason = explain_missing("dense_params", "", execution=run(*cells), cell_sources=sources, limits=LIMITS)
    assert reason == messages.PLACEHOLDER_LEFT.format(name="dense_params",
                                                      cell=f"{index + 1} (a_dense_conv_params)")
    # another error in a cell that uses the name is still "not defined"
    cells[-1] = CellRun(index, "a_dense_conv_params", "error", 0.1, message="NameError: name 'x'")
    reason = explain_missing("dense_params", "", execution=run(*cells), cell_sources=sources, limits=LIMITS)
    assert reason == messages.NOT_DEFINED.format(name="dense_params")


def test_an_unexportable_value_keeps_the_export_reason():
    reason = explain_missing("conv1_params", "a function, not a number", execution=run(),
                             cell_sources=[], limits=LIMITS)
    assert reason == "conv1_params could not be read by the grader: a function, not a number"


def assigns(source: str, name: str) -> bool:
    return CellNames([source]).defining(name) == [0]


def test_assignment_detection():
    """Which top-level assignments count as defining a name?"""
    assert assigns("cnn_model = keras.Model(i, o)", "cnn_model")
    assert assigns("a, cnn_model = 1, 2", "cnn_model")
    assert assigns("cnn_model: keras.Model = m", "cnn_model")
    assert assigns("(a, cnn_model) = 1, 2", "cnn_model")
    assert not assigns("if cnn_model == 3: pass", "cnn_model")
    assert not assigns("my_cnn_model = 3", "cnn_model")


def test_each_cell_is_parsed_once_per_submission(monkeypatch):
    """Is a big cell read once for all the items that ask about it, not once per item?
    (A 97 KiB cell re-scanned by a regex for each of 14 items cost seconds per call.)"""
    calls: list[int] = []
    real = submission.assigned_names
    monkeypatch.setattr(submission, "assigned_names", lambda src: calls.append(len(src)) or real(src))
    big = "x = 1\n" * 100_000
    sources = ["", big, "conv1_params = 3", big]
    records = {f"q{i}": {"outcome": "missing", "name": f"name{i}", "detail": ""} for i in range(14)}
    items = score_items(records, points={k: 1 for k in records}, execution=run(),
                        cell_sources=sources, limits=LIMITS)
    assert len(items) == 14
    assert sorted(calls) == sorted(len(s) for s in sources if s)


def test_an_item_not_assessable_in_this_mode_is_left_out_of_the_maximum():
    """Is a not-assessable item 0 of 0 with its reason, never free points?"""
    records = {"q1_conv_params": {"outcome": "passed"},
               "q2_cnn_accuracy": {"outcome": "not_assessable",
                                   "message": "the reference cannot clear a meaningful bar here."}}
    items = score_items(records, points={"q1_conv_params": 2, "q2_cnn_accuracy": 2},
                        execution=run(), cell_sources=[], limits=LIMITS)
    assert total(items) == (2.0, 2.0)
    assert not items[1].assessable and not items[1].passed
    assert items[1].message == messages.NOT_ASSESSABLE.format(
        why="the reference cannot clear a meaningful bar here.")


def test_redaction_hides_grader_paths_and_shows_control_characters():
    """Does a message that echoes an answer lose the grader's paths, and are terminal escapes
    and lone surrogates shown as escapes rather than passed on?"""
    pairs = [("/srv/course", "<course>"), ("/srv/course/.venv", "<python>")]
    text = "got '/srv/course/.venv/lib/keras/__init__.py' and '/srv/course/release/x' \x1b[2J\ud800"
    assert score.redact(text, pairs) == (
        "got '<python>/lib/keras/__init__.py' and '<course>/release/x' \\x1b[2J\\ud800")


def test_items_judged_on_backbone_features_say_what_stand_in_weights_mean():
    """With stand-in weights, does an item judged on ResNet50's features (passed or failed)
    say what its result does and does not mean, while other items and ImageNet runs do not?"""
    records = {
        "q1_conv_params": {"outcome": "passed"},
        "q2_cnn_architecture": {"outcome": "failed", "message": "Too few layers.",
                                "uses_backbone_features": True},
        "q2_cnn_accuracy": {"outcome": "passed", "uses_backbone_features": True},
    }
    stand_in = dataclasses.replace(run(), weights_mode="stand-in")
    items = {i.name: i for i in score_items(records, points=POINTS, execution=stand_in,
                                            cell_sources=[], limits=LIMITS)}
    assert items["q1_conv_params"].message == messages.PASSED
    assert items["q2_cnn_architecture"].message == f"Too few layers. {messages.STAND_IN_ITEM}"
    assert items["q2_cnn_accuracy"].message == f"{messages.PASSED} {messages.STAND_IN_ITEM}"
    assert items["q2_cnn_accuracy"].score == 2.0  # a note, never a change of points
    imagenet = score_items(records, points=POINTS, execution=run(), cell_sources=[],
                           limits=LIMITS)
    assert all(messages.STAND_IN_ITEM not in i.message for i in imagenet)


def test_each_item_keeps_the_visibility_its_rubric_test_declares():
    """Is an item's Gradescope visibility the one its record carries (from the rubric marker),
    whatever its outcome, and "visible" for every item that declares none?"""
    records = {
        "q1_conv_params": {"outcome": "passed"},
        "q2_cnn_architecture": {"outcome": "missing", "name": "cnn_model", "detail": "",
                                "visibility": "hidden"},
        "q2_cnn_accuracy": {"outcome": "failed", "message": "Too low.",
                            "visibility": "after_due_date"},
    }
    items = score_items(records, points=POINTS, execution=run(), cell_sources=[],
                        limits=LIMITS)
    assert {i.name: i.visibility for i in items} == {
        name: record.get("visibility", "visible") for name, record in records.items()}


FULL = Profile(image_size_px=224, cnn_epochs=10, head_epochs=10, finetune_epochs=10)
SMALL = Profile(image_size_px=96, cnn_epochs=5, head_epochs=5, finetune_epochs=2)


def test_a_profile_is_reduced_when_smaller_than_the_largest_in_any_way():
    """Is a run reduced when its images or any training's epochs are smaller than the course's
    largest profile, and never at that profile itself?"""
    fewer_epochs = dataclasses.replace(FULL, finetune_epochs=9)
    profiles = {"full": FULL, "reduced": SMALL, "shorter": fewer_epochs}
    assert score.reduced_profile(profiles, "full") is None
    assert score.reduced_profile(profiles, "reduced") == score.ReducedProfile("reduced", SMALL, FULL)
    assert score.reduced_profile(profiles, "shorter") == score.ReducedProfile(
        "shorter", fewer_epochs, FULL)
    assert score.reduced_profile({"reduced": SMALL}, "reduced") is None  # nothing larger to be


def test_items_that_depend_on_the_profile_say_what_a_reduced_run_means():
    """At the reduced profile, does an accuracy item (passed or failed) say its pass mark was
    calibrated for this profile and a training item which epochs it was checked against, with
    the profiles' numbers; while other items, unjudged items and full-size runs say nothing?"""
    records = {
        "q1_conv_params": {"outcome": "passed"},
        "q2_cnn_trained": {"outcome": "passed",
                           "profile_dependent": {"epochs": "cnn", "pass_mark": False}},
        "q2_cnn_accuracy": {"outcome": "failed", "message": "cnn_model reached 60%.",
                            "profile_dependent": {"epochs": "cnn", "pass_mark": True}},
        "q5_finetune_accuracy": {"outcome": "passed",
                                 "profile_dependent": {"epochs": "finetune", "pass_mark": True}},
        "q4_head_accuracy": {"outcome": "not_assessable", "message": "not here.",
                             "profile_dependent": {"epochs": "head", "pass_mark": True}},
        "q5_model_choice": {"outcome": "missing", "name": "chosen_model", "detail": "",
                            "profile_dependent": {"epochs": "head", "pass_mark": False}},
    }
    points = {name: 1 for name in records}
    reduced = score.reduced_profile({"full": FULL, "reduced": SMALL}, "reduced")
    items = {i.name: i for i in score_items(records, points=points, execution=run(),
                                            cell_sources=[], limits=LIMITS,
                                            reduced=reduced)}
    assert items["q2_cnn_accuracy"].message == (
        "cnn_model reached 60%. Graded at the reduced profile (96 px images, 5 epochs of "
        "training; the full assignment uses 224 px and 10 epochs): the pass mark was calibrated "
        "for this profile, so passing shows that your model learns, not the accuracy it would "
        "reach at full size.")
    assert items["q5_finetune_accuracy"].message == messages.PASSED + " " + \
        messages.REDUCED_PROFILE_PASS_MARK.format(profile="reduced", size_px=96, epochs=2,
                                                  full_size_px=224, full_epochs=10)
    assert items["q2_cnn_trained"].message == (
        "Correct. Graded at the reduced profile (96 px images, 5 epochs of training; the full "
        "assignment uses 224 px and 10 epochs): training was checked against this profile's 5 "
        "epochs, so this shows that your notebook trains as its settings ask, not how a "
        "full-length run would go.")
    assert items["q2_cnn_accuracy"].score == 0 and items["q5_finetune_accuracy"].score == 1
    unjudged = ("q1_conv_params", "q4_head_accuracy", "q5_model_choice")
    assert all("reduced profile" not in items[name].message for name in unjudged)
    full_size = score_items(records, points=points, execution=run(), cell_sources=[],
                            limits=LIMITS, reduced=None)
    assert all("profile" not in i.message for i in full_size)


def test_stand_in_and_reduced_notes_both_show_on_an_item_they_both_affect():
    """With stand-in weights at the reduced profile, does an item judged on backbone features
    carry both notes, stand-in first?"""
    records = {"q4_head_accuracy": {"outcome": "passed", "uses_backbone_features": True,
                                    "profile_dependent": {"epochs": "head", "pass_mark": True}}}
    reduced = score.reduced_profile({"full": FULL, "reduced": SMALL}, "reduced")
    stand_in = dataclasses.replace(run(), weights_mode="stand-in")
    (item,) = score_items(records, points={"q4_head_accuracy": 2}, execution=stand_in,
                          cell_sources=[], limits=LIMITS, reduced=reduced)
    assert item.message == " ".join([messages.PASSED, messages.STAND_IN_ITEM,
                                     messages.REDUCED_PROFILE_PASS_MARK.format(
                                         profile="reduced", size_px=96, epochs=5,
                                         full_size_px=224, full_epochs=10)])
