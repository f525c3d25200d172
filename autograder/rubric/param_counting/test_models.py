"""Parts 3 and 4: the saved models' own counts, freezing, and BatchNormalization in inference
mode; every fact is read from the exported ``.keras`` files."""

from autograder.grading.evidence import fail, layer_rows, weight_counts
from autograder.rubric.param_counting.counting import (
    answers,
    as_int,
    fmt,
    fresh_model,
    nested_base,
)

FROZEN_IN_3B = ("Conv2D", "BatchNormalization")


def _types(rows):
    return [r["type"] for r in rows if r["type"] != "InputLayer"]


def test_q3_counting_model(evidence, key):
    rows = layer_rows(evidence.model("counting_model"))
    want = key["models"]["counting_model"]["layers"]
    if _types(rows) != _types(want):
        fail("counting_model's layers should be, in order: " + " → ".join(_types(want))
             + "; yours are: " + " → ".join(_types(rows)) + ".")
    got_params = [r["params"] for r in rows if r["type"] != "InputLayer"]
    want_params = [r["params"] for r in want if r["type"] != "InputLayer"]
    if got_params != want_params:
        fail(f"counting_model's layers hold {got_params} parameters; the layers asked for hold "
             f"{want_params}: check the filters, kernel size and units.")
    counts = weight_counts(evidence.model("counting_model"))
    got = {n: as_int(evidence.answer(n), name=n)
           for n in ("total_params", "trainable_params", "non_trainable_params")}
    want_counts = {"total_params": counts["total"], "trainable_params": counts["trainable"],
                   "non_trainable_params": counts["non_trainable"]}
    wrong = [n for n in got if got[n] != want_counts[n]]
    if wrong:
        fail(f"Not right: {', '.join(f'{n} = {fmt(got[n])}' for n in wrong)}. Your model holds "
             f"{fmt(counts['total'])} parameters; the moving statistics of BatchNormalization "
             "are its non-trainable ones.")


def test_q3_frozen_counts(evidence):
    """The predicted split must match the submitted model with conv and bn frozen (measured
    on a copy), and the model must have been handed in trainable again."""
    still_frozen = [r["name"] for r in layer_rows(evidence.model("counting_model"))
                    if r["type"] != "InputLayer" and not r["trainable"]]
    model = fresh_model(evidence, "counting_model")
    for layer in model.layers:
        if type(layer).__name__ in FROZEN_IN_3B:
            layer.trainable = False
    want = weight_counts(model)
    got_t = as_int(evidence.answer("frozen_trainable_params"), name="frozen_trainable_params")
    got_n = as_int(evidence.answer("frozen_non_trainable_params"),
                   name="frozen_non_trainable_params")
    if (got_t, got_n) != (want["trainable"], want["non_trainable"]):
        fail(f"With conv and bn frozen, your model does not split into {fmt(got_t)} trainable / "
             f"{fmt(got_n)} non-trainable: every weight of a frozen layer moves to non-trainable, "
             f"and the total ({fmt(want['total'])}) stays the same.")
    if still_frozen:
        fail(f"Your counts are right, but counting_model was handed in with "
             f"{', '.join(still_frozen)} still frozen: set trainable = True on them again.")


def test_q4_frozen_base(evidence, key):
    """The counts predicted for the frozen base must be those of the submitted ft_model with
    its base frozen (measured on a copy) and the reference's."""
    model = fresh_model(evidence, "ft_model")
    base = nested_base(model)
    if base is None:
        fail("ft_model has no base model inside it: build base as a keras.Model and call it "
             "on ft_model's input.")
    base.trainable = False
    want = weight_counts(model)
    names = ("ft_frozen_trainable_params", "ft_frozen_non_trainable_params")
    got = tuple(as_int(evidence.answer(n), name=n) for n in names)
    if got != (want["trainable"], want["non_trainable"]) or answers(evidence, key, names):
        fail(f"With base frozen, your counts {fmt(got[0])} / {fmt(got[1])} are not right: "
             "everything inside base (its BatchNormalization's gamma and beta too) is "
             "non-trainable; only the head trains.")


def test_q4_finetune_counts(evidence, key):
    """ft_model as handed in is in its fine-tuning state: the base open, its
    BatchNormalization frozen, and the counts predicted for it are its own."""
    model = evidence.model("ft_model")
    base = nested_base(model)
    if base is None:
        fail("ft_model has no base model inside it to fine-tune.")
    bn = [layer for layer in base.layers if type(layer).__name__ == "BatchNormalization"]
    others = [layer for layer in base.layers
              if layer.weights and type(layer).__name__ != "BatchNormalization"]
    if not bn:
        fail("ft_model's base has no BatchNormalization layer.")
    if not base.trainable or not all(layer.trainable for layer in others):
        fail("ft_model's base was handed in frozen: for fine-tuning, set base.trainable = True "
             "(then freeze its BatchNormalization layer again).")
    counts = weight_counts(model)
    names = ("finetune_trainable_params", "finetune_non_trainable_params")
    got = tuple(as_int(evidence.answer(n), name=n) for n in names)
    if got != (counts["trainable"], counts["non_trainable"]) or answers(evidence, key, names):
        fail(f"Your fine-tuning counts {fmt(got[0])} / {fmt(got[1])} are not those of the "
             "model asked for: the base's Conv2D and the head train; base_bn stays frozen, so "
             "all four of its vectors are non-trainable.")


def test_q4_bn_inference(evidence):
    """Behaviour, not text: ft_model called in training mode must give what it gives in
    inference mode (Dropout switched off on this copy), so its BatchNormalization never
    normalises with batch statistics while fine-tuning; and the fit it went through left the
    layer's moving statistics where a freshly built layer has them."""
    import numpy as np

    model = fresh_model(evidence, "ft_model")
    base = nested_base(model)
    if base is None or not any(type(layer).__name__ == "BatchNormalization"
                               for layer in base.layers):
        fail("ft_model has no base with a BatchNormalization layer inside it.")
    for layer in [*model.layers, *base.layers]:
        if type(layer).__name__ == "Dropout":
            layer.rate = 0.0
    shape = model.input_shape
    if isinstance(shape, list) or any(d is None for d in shape[1:]):
        fail(f"ft_model should take one image input of a fixed shape; it takes {shape}.")
    x = np.random.default_rng(0).uniform(0, 255, size=(8, *shape[1:])).astype("float32")
    trained = np.asarray(model(x, training=True))
    inferred = np.asarray(model(x, training=False))
    if not np.allclose(trained, inferred, atol=1e-5):
        fail("In training mode ft_model gives other outputs than in inference mode: its "
             "BatchNormalization layer uses the statistics of each batch while fine-tuning. "
             "Freeze that layer (trainable = False) after unfreezing base, and call base with "
             "training=False.")
    # base is built fresh in the notebook, so statistics that are not still (0, 1) were
    # moved by the fine-tuning fit: the layer left inference mode during it.
    for layer in base.layers:
        if type(layer).__name__ == "BatchNormalization" and not (
                np.allclose(np.asarray(layer.moving_mean), 0.0)
                and np.allclose(np.asarray(layer.moving_variance), 1.0)):
            fail(f"{layer.name}'s moving mean and variance changed while ft_model trained: it "
                 "normalised with batch statistics during the fit. Freeze it before fitting.")
