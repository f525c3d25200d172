"""Question 2: the from-scratch CNN (architecture, compile settings, training, accuracy)."""

import pytest

from autograder.grading.evidence import fail, layer_rows, optimizer_iterations
from autograder.rubric.cnn_transfer.shapes import (
    compile_problems,
    fit_accuracy_hits,
    fmt,
    probabilities,
    require_accuracy,
    require_history,
    require_history_describes,
    with_activations_folded,
    without_inputs,
)

# Layers a valid variant may add after Flatten (the rubric allows regularisation there).
OPTIONAL_AFTER_FLATTEN = {"Dropout"}


def _core(rows):
    return [r for r in with_activations_folded(without_inputs(rows))
            if r["type"] not in OPTIONAL_AFTER_FLATTEN]


def test_q2_cnn_architecture(evidence, key):
    rows = layer_rows(evidence.model("cnn_model"))
    want = _core(key["models"]["cnn_model"]["layers"])
    got = _core(rows)
    got_types = [r["type"] for r in got]
    want_types = [r["type"] for r in want]
    if got_types != want_types:
        fail("cnn_model's layers should be, in order: " + " → ".join(want_types)
             + " (Dropout after Flatten, and an activation written as a layer of its own, are "
             "allowed); yours are: " + " → ".join(got_types) + ".")
    input_shape = without_inputs(rows)[0]["output_shape"]
    if input_shape != want[0]["output_shape"]:
        fail(f"cnn_model should take images of shape {tuple(want[0]['output_shape'][1:])}; "
             f"it takes {tuple(input_shape[1:])}.")
    for g, w in zip(got, want):
        if g["type"] == "Conv2D" and (g["params"], g["output_shape"]) != (w["params"], w["output_shape"]):
            fail(f"Layer {g['name']} ({g['type']}) has {fmt(g['params'])} parameters and output "
                 f"{tuple(g['output_shape'][1:])}; expected {fmt(w['params'])} and "
                 f"{tuple(w['output_shape'][1:])} (32 filters of 2×2).")
    last = got[-1]
    if last["config"].get("units") != 1 or last["config"].get("activation") != "sigmoid":
        fail("The last layer should be Dense(1, activation='sigmoid') for a binary classifier.")
    hidden = got[-2]
    if hidden["config"].get("activation") != "relu":
        fail("The hidden Dense layer should use the relu activation.")


def test_q2_cnn_compile(evidence, key):
    evidence.model("cnn_model")  # a model that does not load fails here, with its reason
    problems = compile_problems(evidence.model_file("cnn_model"), key["models"]["cnn_model"]["compile"])
    if problems:
        fail("cnn_model's compile settings: " + "; ".join(problems) + ".")


@pytest.mark.profile_dependent(epochs="cnn")
def test_q2_cnn_trained(evidence, inputs, key, validation_set):
    """Trained means trained: the evidence is the saved model's own optimizer, whose iteration
    counter must equal epochs × ceil(n_train / batch size) for the students' train split (from
    the answer key, derived from the data and course config), and a history of that many epochs
    with finite values whose last val_accuracy is the saved model's own on the validation
    images. A dict typed in, training on train + validation, or a counter set by hand beside a
    typed-in history cannot match."""
    evidence.model("cnn_model")  # a model that does not load fails here, with its reason
    evidence.history("cnn_history")  # missing: the item says why
    epochs = inputs.epochs["cnn"]
    training = key["training"]
    per_epoch = training["steps_per_epoch"]
    expected = epochs * per_epoch
    steps = optimizer_iterations(evidence.model_file("cnn_model"))
    if not steps:
        fail("cnn_model as handed in was never trained: its saved optimizer has taken no steps. "
             "Train it with cnn_model.fit(train_ds, validation_data=(x_val, y_val), "
             "epochs=S.cnn_epochs) and keep what fit returns in cnn_history (a dict of numbers "
             "typed in does not count).")
    if steps != expected:
        if steps % per_epoch == 0:
            why = (f"that is {steps // per_epoch} passes over the training images, not {epochs}: "
                   f"fit cnn_model once, for S.cnn_epochs epochs (re-running the fit cell trains "
                   f"further; rebuild the model first)")
        else:
            why = (f"{epochs} epochs over the {training['n_train']} training images in batches of "
                   f"{training['batch_size']} take {expected}: train on train_ds only, never on "
                   f"the validation images")
        fail(f"cnn_model took {steps} training steps; {why}.")
    history = require_history(evidence, "cnn_history", epochs, fit_hint="this very cnn_model.fit")
    images, labels = validation_set
    hits = fit_accuracy_hits(evidence, "cnn_model", images, labels)
    if hits is not None:  # else the architecture item fails, saying why
        require_history_describes(history, "cnn_history", "cnn_model", correct_count=hits,
                                  total=len(labels))


# Accuracy on the hidden grading split shows on Gradescope only after the due date: a result
# seen on every resubmission would let a student tune against the hidden split.
@pytest.mark.visibility("after_due_date")
@pytest.mark.profile_dependent(epochs="cnn", pass_mark=True)
def test_q2_cnn_accuracy(evidence, key, grading_set):
    images, labels = grading_set
    probs = probabilities(evidence, "cnn_model", images, split="grading")
    require_accuracy(probs, labels, key, "cnn_model",
                     expectation=" for this architecture after the full training")
