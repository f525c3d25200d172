"""Question 4: transfer learning by feature extraction (ResNet50 embeddings + dense head)."""

import pytest

from autograder.grading.evidence import fail, layer_rows, optimizer_iterations, weight_counts
from autograder.rubric.cnn_transfer.shapes import (
    as_int,
    as_shape,
    compile_problems,
    fmt,
    head_problem,
    probabilities,
    require_accuracy,
    require_history,
)


def test_q4_backbone_facts(evidence, key):
    for name in ("backbone_layers", "backbone_params"):
        got = as_int(evidence.answer(name), name=name)
        if got != key["answers"][name]:
            fail(f"{name} is {fmt(got)}; count it on ResNet50(include_top=False) itself "
                 f"(len(model.layers), model.count_params()).")
    got = as_shape(evidence.answer("embedding_shape"), name="embedding_shape", length=3)
    if got != list(key["answers"]["embedding_shape"]):
        fail(f"embedding_shape is {tuple(got)}; it is the backbone's output shape for one image.")


def test_q4_head_architecture(evidence, key):
    model = evidence.model("tl_model")
    problem = head_problem("tl_model", layer_rows(model), key["models"]["tl_model"]["layers"])
    if problem:
        fail(problem)
    got_in = [int(d) for d in model.inputs[0].shape[1:]]
    want_in = list(key["answers"]["embedding_shape"])
    if got_in != want_in:
        fail(f"tl_model should take embeddings of shape {tuple(want_in)}; it takes {tuple(got_in)}.")
    got_total = weight_counts(model)["total"]
    want_total = key["models"]["tl_model"]["counts"]["total"]
    if got_total != want_total:
        fail(f"tl_model has {fmt(got_total)} parameters; Flatten → Dense(256) → Dropout → "
             f"Dense(1) on these embeddings has {fmt(want_total)}.")
    problems = compile_problems(evidence.model_file("tl_model"), key["models"]["tl_model"]["compile"])
    if problems:
        fail("tl_model's compile settings (compile it as in Part 2): " + "; ".join(problems) + ".")


@pytest.mark.visibility("after_due_date")
@pytest.mark.profile_dependent(epochs="head", pass_mark=True)
def test_q4_head_accuracy(evidence, key, inputs, grading_set, grading_embeddings):
    """The head was trained as asked (tl_history of S.head_epochs epochs, and the saved
    optimizer's step count to match, on the train embeddings only), then its accuracy on the
    grader's own embeddings of the hidden split."""
    epochs = inputs.epochs["head"]
    require_history(evidence, "tl_history", epochs, fit_hint="tl_model.fit")
    training = key["training"]
    expected = epochs * training["steps_per_epoch"]
    steps = optimizer_iterations(evidence.model_file("tl_model"))
    if steps != expected:
        fail(f"tl_model took {steps or 0} training steps; {epochs} epochs over the "
             f"{training['n_train']} training embeddings in batches of {training['batch_size']} "
             f"take {expected}: fit tl_model once, on emb_train / y_train with "
             f"batch_size=BATCH_SIZE.")
    probs = probabilities(evidence, "tl_model", grading_embeddings, split="grading",
                          what="ResNet50 embeddings")
    require_accuracy(probs, grading_set[1], key, "tl_model",
                     how=" (embedded with the grader's own ResNet50)")
