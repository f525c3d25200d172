"""Question 5: fine-tuning the last layers, and choosing a model on validation."""

import numpy as np

from autograder.grading.evidence import (
    accuracy,
    fail,
    find_backbone,
    trainable_pattern,
    weight_counts,
)
from autograder.rubric.cnn_transfer.shapes import as_int, fmt, require_accuracy


def test_q5_finetune_frozen(evidence, key, pretrained):
    model = evidence.model("ft_model")
    backbone = find_backbone(model)
    if backbone is None:
        fail("ft_model should contain the ResNet50 backbone as a nested model.")
    want_pattern = key["models"]["ft_model"]["backbone_trainable"]
    got_pattern = trainable_pattern(backbone)
    if got_pattern != want_pattern:
        open_layers = sum(got_pattern)
        fail(f"In ft_model's ResNet50, {open_layers} of {len(got_pattern)} layers are trainable; "
             f"freeze everything except the last {sum(want_pattern)} layers.")
    counts = weight_counts(model)
    want = key["models"]["ft_model"]["counts"]["trainable"]
    if counts["trainable"] != want:
        fail(f"ft_model has {fmt(counts['trainable'])} trainable parameters; with the last "
             f"{sum(want_pattern)} backbone layers open and the head on top it should have "
             f"{fmt(want)}.")
    answer = as_int(evidence.answer("ft_trainable_params"), name="ft_trainable_params")
    if answer != counts["trainable"]:
        fail(f"ft_trainable_params is {fmt(answer)}, but your ft_model has "
             f"{fmt(counts['trainable'])} trainable parameters.")
    # Frozen must mean unchanged: compare with the pretrained weights.
    for layer, trainable in zip(backbone.layers, got_pattern):
        if trainable or layer.name not in pretrained:
            continue
        for mine, theirs in zip(layer.get_weights(), pretrained[layer.name]):
            if mine.shape != theirs.shape or not np.allclose(mine, theirs, atol=1e-5):
                fail(f"Layer {layer.name} is frozen in ft_model but its weights differ from "
                     f"the pretrained ones: freeze layers before training, not after.")


def test_q5_finetune_accuracy(evidence, key, grading_set):
    require_accuracy(evidence, key, "ft_model", *grading_set)


def test_q5_model_choice(evidence, validation_set, validation_embeddings):
    chosen = evidence.answer("chosen_model")
    if chosen not in ("tl", "ft"):
        fail(f'chosen_model should be "tl" or "ft"; got {chosen!r}.')
    images, labels = validation_set
    scores = {
        "tl": accuracy(evidence.model("tl_model"), validation_embeddings, labels),
        "ft": accuracy(evidence.model("ft_model"), images, labels),
    }
    other = "ft" if chosen == "tl" else "tl"
    tolerance = 1.0 / len(labels)  # one image either way is a tie
    if scores[chosen] + tolerance < scores[other]:
        fail(f'You chose "{chosen}", but on the validation split "{other}" scores higher '
             f"({scores[other]:.0%} vs {scores[chosen]:.0%}). Choose on validation, never on test.")
