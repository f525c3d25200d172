"""Question 5: fine-tuning the last layers, and choosing a model on validation."""

import numpy as np
import pytest

from autograder.grading.evidence import (
    FT_AGREEMENT_TOLERANCE,
    GRADER_BUGS,
    fail,
    finetune_tail,
    find_backbone,
    layer_signature,
    model_outputs,
    rows_of,
    trainable_pattern,
    weight_counts,
)
from autograder.rubric.cnn_transfer.shapes import (
    as_choice,
    as_int,
    correct,
    fmt,
    head_problem,
    probabilities,
    require_accuracy,
    require_history,
    require_probabilities,
    spread,
)


def test_q5_finetune_frozen(evidence, key, trusted_layers):
    """The trainable pattern and counts as the notebook asks, and frozen must mean unchanged:
    every frozen layer of the submitted backbone is compared with the trusted backbone's layer
    at the same position (type, weight shapes, hash of the weights), never by name."""
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
    want_head = _after_backbone(key["models"]["ft_model"]["layers"])
    problem = head_problem("ft_model's head (after ResNet50)", _head_rows(model, backbone),
                           want_head)
    if problem:
        fail(problem + " Question 5a asks for a new head with the same layers as in 4b.")
    counts = weight_counts(model)
    want = key["models"]["ft_model"]["counts"]["trainable"]
    if counts["trainable"] != want:
        fail(f"ft_model has {fmt(counts['trainable'])} trainable parameters; with the last "
             f"{sum(want_pattern)} backbone layers open and the head on top it should have "
             f"{fmt(want)}.")
    want_total = key["models"]["ft_model"]["counts"]["total"]
    if counts["total"] != want_total:
        fail(f"ft_model has {fmt(counts['total'])} parameters in all; ResNet50 without its top and "
             f"the head of Question 4b have {fmt(want_total)}.")
    answer = as_int(evidence.answer("ft_trainable_params"), name="ft_trainable_params")
    if answer != counts["trainable"]:
        fail(f"ft_trainable_params is {fmt(answer)}, but your ft_model has "
             f"{fmt(counts['trainable'])} trainable parameters.")
    if [type(l).__name__ for l in backbone.layers] != [t["type"] for t in trusted_layers]:
        fail("ft_model's backbone is not ResNet50 as keras.applications builds it (its layers "
             "differ): reuse the backbone from Question 4a.")
    for index, (layer, trusted, trainable) in enumerate(zip(backbone.layers, trusted_layers,
                                                            got_pattern)):
        if trainable:
            continue
        mine = layer_signature(layer)
        if mine["shapes"] != trusted["shapes"] or mine["sha256"] != trusted["sha256"]:
            fail(f"Layer {index + 1} of ft_model's ResNet50 ({layer.name}) is frozen, but its "
                 f"weights are not the pretrained ones: build the backbone with "
                 f"weights=course_helpers.resnet50_weights(), freeze before training, and do not "
                 f"change frozen layers.")


def _head_rows(model, backbone) -> list[dict]:
    """Layer rows of what ft_model runs after its backbone, a nested model's layers (a head
    written as keras.Sequential) in its place."""
    outer = list(model.layers)
    rows = []
    for layer in outer[outer.index(backbone) + 1:]:
        rows += rows_of(getattr(layer, "layers", None) or [layer])
    return rows


def _after_backbone(rows: list[dict]) -> list[dict]:
    """The key's rows after the nested backbone's (the one row with inner layers)."""
    at = next(i for i, row in enumerate(rows) if "inner_trainable" in row)
    return rows[at + 1:]


_tails: dict[str, np.ndarray] = {}


def _via_trusted_features(evidence, key, mid, *, split: str) -> np.ndarray:
    """ft_model's own last block and head applied to the trusted backbone's activations (made
    with preprocess_input): what ft_model must compute, and what its tail was trained on."""
    if split in _tails:
        return _tails[split]
    model = evidence.model("ft_model")
    open_layers = sum(key["models"]["ft_model"]["backbone_trainable"])
    try:
        tail = finetune_tail(model, open_layers=open_layers)
        probs = model_outputs(tail, mid)
    except GRADER_BUGS:
        raise
    except Exception:
        fail(f"ft_model should be the ResNet50 backbone of Question 4a followed by the head layers "
             f"(Flatten → Dense → Dropout → Dense(1, sigmoid)); its last {open_layers} backbone "
             f"layers and head could not be run on ResNet50's own features.")
    if probs.shape[0] != len(mid):
        fail("ft_model should give one probability per image.")
    require_probabilities(probs, "ft_model", len(mid))
    _tails[split] = probs
    return probs


AGREEMENT_IMAGES = 16
"""How many hidden images ft_model itself runs on, spread evenly over the split.

Its accuracy is measured on every hidden image through its own last block and head applied to
the trusted backbone's activations (computed once per batch), which is what ft_model computes
when it follows ResNet50's pipeline: its frozen layers are the pretrained ones, compared by
position and weights in test_q5_finetune_frozen. Whether it follows the pipeline (its input
preprocessing, its wiring) is a property of the model, not of particular images: a missing
preprocess_input, a 1/255 rescale or a rewired backbone changes the output on every image, so a
sample of images the student never saw shows it. Running the whole ResNet50 of every submission
over the whole split was most of the check stage (issue 12)."""

AGREEMENT_BATCH = 8
"""Agreement images per call of ft_model. A process's first run of a ResNet50 pays for the
memory it touches the first time, and on the grading machine that dominated: 16 images at
224 px in one call took 3.3 s (4.4 s of it in the kernel's page faults), in two calls of 8
1.4 s, against 0.9-1.1 s for any later run (issue 12)."""


@pytest.mark.visibility("after_due_date")
@pytest.mark.profile_dependent(epochs="finetune", pass_mark=True)
def test_q5_finetune_accuracy(evidence, key, inputs, grading_set, grading_mid):
    """Trained as asked: ft_history comes from a fit over the training features only (as many
    batches per epoch as the train split makes; training on train + validation makes more).
    Then agreement with the trusted pipeline: ft_model on hidden images must give what its own
    last block and head give on ResNet50 activations computed by the grader from the same
    images with preprocess_input (a model without preprocess_input, or with a 1/255 rescale,
    disagrees); its accuracy on the hidden split, through that same pipeline, must then reach
    the calibrated threshold (see :data:`AGREEMENT_IMAGES`)."""
    require_history(evidence, "ft_history", inputs.epochs["finetune"], fit_hint="tail_model.fit")
    training = key["training"]
    steps = evidence.steps_per_epoch("ft_history")
    if steps is not None and steps != training["steps_per_epoch"]:
        fail(f"The fit that returned ft_history took {steps} batches per epoch; the "
             f"{training['n_train']} training images in batches of {training['batch_size']} make "
             f"{training['steps_per_epoch']}: train tail_model on mid_train / y_train only (never "
             f"on the validation features), with batch_size=BATCH_SIZE.")
    images, labels = grading_set
    rows = spread(len(images), AGREEMENT_IMAGES)
    probs = probabilities(evidence, "ft_model", images, split="grading", rows=rows,
                          batch_size=AGREEMENT_BATCH)
    trusted = _via_trusted_features(evidence, key, grading_mid, split="grading")
    diff = float(np.max(np.abs(probs - trusted[rows])))
    if diff > FT_AGREEMENT_TOLERANCE:
        fail(f"ft_model does not follow ResNet50's own pipeline: on the hidden images its "
             f"predictions differ (by up to {diff:.2f}) from those of its own last block and head "
             f"on ResNet50 features of the same images prepared with preprocess_input. Apply "
             f"keras.applications.resnet50.preprocess_input to the image input inside ft_model "
             f"(not a 1/255 Rescaling, and not nothing), feed the result to the pretrained "
             f"backbone, and leave its frozen layers unchanged.")
    require_accuracy(trusted, labels, key, "ft_model")


def test_q5_model_choice(evidence, key, validation_set, validation_embeddings, validation_mid):
    """The notebook's rule, exactly: "ft" only if its validation accuracy is strictly higher than
    "tl"'s, else "tl" (a tie keeps the simpler model); no tolerance.

    Which numbers: the notebook tells students to compare the last ``val_accuracy`` of
    ``tl_history`` and ``ft_history``. Those histories were computed in the student's kernel, so
    the grader does not read them; it recomputes the same two quantities from the saved models on
    the validation split: ``tl_model`` on the grader's own ResNet50 embeddings, and ft_model's
    last block and head on the grader's own activations before that block, which is exactly what
    the tail was validated on after the last epoch (same weights, same images, same
    preprocessing). For an honest submission these are the history's numbers, so the rule the
    student applied gives the same answer; a typed-in constant that disagrees with it fails. The
    counts of correct images are compared, so a tie is exact."""
    chosen = as_choice(evidence.answer("chosen_model"), name="chosen_model")
    images, labels = validation_set
    tl = correct(probabilities(evidence, "tl_model", validation_embeddings, split="validation",
                               what="ResNet50 embeddings"), labels)
    ft = correct(_via_trusted_features(evidence, key, validation_mid, split="validation"), labels)
    rule = "ft" if ft > tl else "tl"
    if chosen != rule:
        n = len(labels)
        fail(f'You chose "{chosen}", but on the validation split "tl" scores {tl}/{n} and "ft" '
             f'{ft}/{n}, so the rule gives "{rule}" ("ft" only if strictly higher; a tie keeps '
             f'"tl"). Derive chosen_model from the validation accuracies after the last epoch, '
             f"never from the test set and never typed in.")
