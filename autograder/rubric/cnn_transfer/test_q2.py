"""Question 2: the from-scratch CNN (architecture, compile settings, training, accuracy)."""

from autograder.grading.evidence import compile_facts, fail, layer_rows
from autograder.rubric.cnn_transfer.shapes import fmt, require_accuracy, without_inputs

# Layers a valid variant may add after Flatten (the rubric allows regularisation there).
OPTIONAL_AFTER_FLATTEN = {"Dropout"}


def _core(rows):
    return [r for r in without_inputs(rows) if r["type"] not in OPTIONAL_AFTER_FLATTEN]


def test_q2_cnn_architecture(evidence, key):
    rows = layer_rows(evidence.model("cnn_model"))
    want = _core(key["models"]["cnn_model"]["layers"])
    got = _core(rows)
    got_types = [r["type"] for r in got]
    want_types = [r["type"] for r in want]
    if got_types != want_types:
        fail("cnn_model's layers should be, in order: " + " → ".join(want_types)
             + f" (Dropout after Flatten is allowed); yours are: " + " → ".join(got_types) + ".")
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
    got = compile_facts(evidence.model_file("cnn_model"))
    want = key["models"]["cnn_model"]["compile"]
    problems = []
    if str(got["loss"]).lower().replace("_", "") != str(want["loss"]).lower().replace("_", ""):
        problems.append(f"loss should be {want['loss']} (got {got['loss']})")
    if got["optimizer"] != want["optimizer"]:
        problems.append(f"optimizer should be {want['optimizer']} (got {got['optimizer']})")
    if not {"accuracy", "acc", "BinaryAccuracy"} & set(got["metrics"]):
        problems.append(f"metrics should include accuracy (got {got['metrics']})")
    if problems:
        fail("cnn_model's compile settings: " + "; ".join(problems) + ".")


def test_q2_cnn_trained(evidence, inputs):
    history = evidence.history("cnn_history")
    epochs = inputs.epochs["cnn"]
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if metric not in history:
            fail(f"cnn_history has no {metric!r}: train with validation_data=... and "
                 f"metrics=['accuracy'].")
    if len(history["loss"]) != epochs:
        fail(f"cnn_history has {len(history['loss'])} epochs; train for {epochs}.")


def test_q2_cnn_accuracy(evidence, key, grading_set):
    require_accuracy(evidence, key, "cnn_model", *grading_set,
                     expectation=" for this architecture after the full training")
