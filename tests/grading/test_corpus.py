"""The labelled corpus, graded end to end in one batch: no valid variant loses a point, every
honest mistake loses exactly the items it names, and nothing ends as "could not be checked".
Valid variants whose changes touch different cells share one notebook; a mistake is graded
alone or beside one mistake from the notebook's other, independent half (corpus/variants.py:
``GRADED``).

Variants are built from the source notebook by asserted edits (tests/grading/corpus/variants.py),
graded at the reduced profile with stand-in weights against the session's calibrated key. Which
accuracy items are assessable in this mode comes from that key, never from this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.grading import messages
from autograder.grading.jobs import discover, run_batch
from autograder.grading.pipeline import make_context
from corpus.variants import (
    GRADED,
    GRADED_AS,
    MISTAKE_PAIRS,
    VALID_GROUPS,
    VARIANTS,
    CorpusError,
    Edit,
    Variant,
    build,
    combined,
    paired,
)


ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
# The accuracy items and the model each one measures (the rubric's own structure).
ACCURACY_ITEMS = {"q2_cnn_accuracy": "cnn_model", "q4_head_accuracy": "tl_model",
                  "q5_finetune_accuracy": "ft_model"}
NOT_ASSESSABLE_MARK = "cannot be assessed in this grading mode"
CRASHED_MARK = messages.CHECK_CRASHED.split("(")[0]


def test_the_corpus_is_big_and_labelled_against_real_items(base_course):
    """At least 30 variants, valid ones and mistakes, every label a real rubric item, and every
    edit applying exactly once to today's source notebook."""
    points = base_course.config.assignment("cnn_transfer").points
    assert len(VARIANTS) >= 30
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)
    assert sum(v.valid for v in VARIANTS) >= 5 and sum(not v.valid for v in VARIANTS) >= 15
    for variant in VARIANTS:
        assert (variant.fails | variant.fails_if_assessable) <= set(points), variant.name
        assert variant.fails_if_assessable <= set(ACCURACY_ITEMS), variant.name
        build(SOURCE, variant)  # raises CorpusError when an edit no longer applies once


def test_every_variant_is_graded_once_and_no_mistake_beside_a_valid_change():
    """Is each variant in exactly one graded notebook (alone, in one valid group, or in one
    pair of mistakes), every group and pair built from its parts' changes and labelled with
    their items, and no valid change graded beside a mistake?"""
    grouped = [name for names in VALID_GROUPS.values() for name in names]
    pairs = [name for names in MISTAKE_PAIRS.values() for name in names]
    assert len(grouped + pairs) == len(set(grouped + pairs))
    graded = {v.name: v for v in GRADED}
    assert len(graded) == len(GRADED)
    by_name = {v.name: v for v in VARIANTS}
    for variant in VARIANTS:
        assert [variant.name in graded, variant.name in grouped, variant.name in pairs].count(True) == 1
        assert GRADED_AS[variant.name] in graded, variant.name
    for group, names in VALID_GROUPS.items():
        assert graded[group].valid and graded[group].changes == tuple(
            c for n in names for c in by_name[n].changes)
        build(SOURCE, graded[group])
    for pair, (early, late) in MISTAKE_PAIRS.items():
        parts = (by_name[early], by_name[late])
        assert graded[pair].changes == parts[0].changes + parts[1].changes
        assert graded[pair].fails == parts[0].fails | parts[1].fails
        assert graded[pair].fails_if_assessable == parts[0].fails_if_assessable | parts[1].fails_if_assessable
        build(SOURCE, graded[pair])


def test_a_group_refuses_a_mistake_and_two_changes_to_one_cell():
    by_name = {v.name: v for v in VARIANTS}
    with pytest.raises(CorpusError, match="graded on its own"):
        combined("bad", (by_name["reference"], by_name["off_by_bias"]))
    with pytest.raises(CorpusError, match="a_cnn_architecture"):
        combined("bad", (by_name["cnn_sequential"], by_name["cnn_wider_dropout"]))


def test_a_pair_holds_one_mistake_of_each_half():
    by_name = {v.name: v for v in VARIANTS}
    with pytest.raises(CorpusError, match="two mistakes"):
        paired("bad", by_name["off_by_bias"], by_name["reference"])
    with pytest.raises(CorpusError, match="cannot be the early half"):
        paired("bad", by_name["nine_open"], by_name["eleven_open"])
    with pytest.raises(CorpusError, match="cannot be the late half"):
        paired("bad", by_name["off_by_bias"], by_name["cnn_sgd"])


def test_an_edit_that_no_longer_matches_fails_loudly():
    stale = Variant("stale", "an edit the notebook no longer contains",
                    (Edit("a_conv_params", "conv1_params = 999", "conv1_params = 1"),))
    with pytest.raises(CorpusError, match="occurs 0 times"):
        build(SOURCE, stale)
    twice = Variant("twice", "an edit that matches twice", (Edit("a_conv_params", "+ 1) * 32", "+ 1) * 16"),))
    with pytest.raises(CorpusError, match="occurs 2 times"):
        build(SOURCE, twice)


@pytest.fixture(scope="module")
def graded_corpus(calibrated, e2e_root):
    from corpus.variants import write_corpus
    from e2e_support import open_dir

    course, key = calibrated
    subs = open_dir("course-corpus-")
    write_corpus(SOURCE, subs, "cnn_transfer.ipynb")
    out = e2e_root / "corpus-out"
    ctx = make_context(course, "cnn_transfer", profile_name="reduced", out_dir=out,
                       weights_mode="stand-in")
    jobs = discover([subs], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer")
    outcome = run_batch(ctx, jobs)
    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}
    return key, outcome, results


def _verdicts(variant: Variant, result: dict, key: dict) -> list[str]:
    """Every way this variant's grades differ from its labels (empty when all agree)."""
    problems = []
    not_assessable = set(key.get("not_assessable", {}))
    tests = {t["name"]: t for t in result["tests"]}
    for name, test in tests.items():
        output = test.get("output", "")
        labelled_na = "not-assessable" in test.get("tags", []) or NOT_ASSESSABLE_MARK in output
        model = ACCURACY_ITEMS.get(name)
        na_here = model in not_assessable
        if CRASHED_MARK in output:
            problems.append(f"{name}: crashed: {output}")
        elif labelled_na and test["score"] != 0:
            problems.append(f"{name}: not assessable but scored {test['score']}")
        elif labelled_na and not na_here:
            problems.append(f"{name}: labelled not assessable, but the key can assess it")
        elif name in variant.fails or (name in variant.fails_if_assessable and not na_here):
            if test["score"] != 0 or labelled_na:
                problems.append(f"{name}: should fail, got {test['score']}: {output}")
        elif na_here:
            if not labelled_na:
                problems.append(f"{name}: not assessable in this mode, got {test['score']}: {output}")
        elif test["score"] != test["max_score"]:
            problems.append(f"{name}: should pass, got {test['score']}/{test['max_score']}: {output}")
    return problems


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.sandbox
def test_every_variant_gets_exactly_its_labels(graded_corpus):
    """Valid variants keep every point; each mistake loses exactly the items it names, with a
    message (never "could not be checked"); accuracy items this mode cannot assess are labelled
    so and give no points."""
    key, outcome, results = graded_corpus
    assert outcome.failed == {}
    assert set(results) == {v.name for v in GRADED}
    report = {v.name: _verdicts(v, results[v.name], key) for v in GRADED}
    wrong = {name: problems for name, problems in report.items() if problems}
    assert wrong == {}, json.dumps(wrong, indent=1)


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.sandbox
def test_failure_messages_say_what_to_fix(graded_corpus):
    """The messages of the headline mistakes name the fix."""
    _, _, results = graded_corpus

    def output(variant: str, item: str) -> str:
        return next(t["output"] for t in results[GRADED_AS[variant]]["tests"] if t["name"] == item)

    assert "never trained" in output("plain_dict_history", "q2_cnn_trained")
    assert "never on the validation images" in output("train_on_validation", "q2_cnn_trained")
    assert "fit cnn_model once" in output("fit_twice", "q2_cnn_trained")
    assert "trainable = True" in output("cnn_left_frozen", "q3_frozen_counts")
    assert "preprocess_input" in output("ft_without_preprocess", "q5_finetune_accuracy")
    assert "preprocess_input" in output("ft_rescale_255", "q5_finetune_accuracy")
    assert "pretrained" in output("frozen_changed_renamed", "q5_finetune_frozen")
    assert "Dense(1, activation='sigmoid')" in output("tl_softmax_head", "q4_head_accuracy")
    assert "Dense(1, activation='sigmoid')" in output("tl_softmax_head", "q5_model_choice")
    assert "same output" in output("constant_cnn", "q2_cnn_accuracy")
    assert "a tie keeps" in output("choice_typed_in", "q5_model_choice")
    assert "drops 0.1 of its inputs" in output("heads_dropout_low", "q4_head_architecture")
    assert "ft_model's head (after ResNet50)" in output("heads_dropout_low", "q5_finetune_frozen")
    assert "never on the validation features" in output("ft_tail_on_train_and_val",
                                                         "q5_finetune_accuracy")
    assert "optimizer should be Adam (got SGD)" in output("tl_head_sgd", "q4_head_architecture")
