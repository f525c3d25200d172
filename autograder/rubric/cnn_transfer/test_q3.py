"""Question 3: reading weights and freezing layers."""

from autograder.grading.evidence import GRADER_BUGS, fail, layer_rows, weight_counts
from autograder.rubric.cnn_transfer.shapes import as_int, as_shape, fmt


def test_q3_kernel_shape(evidence):
    model = evidence.model("cnn_model")
    conv = next((l for l in model.layers if type(l).__name__ == "Conv2D"), None)
    if conv is None:
        fail("cnn_model has no Conv2D layer to read a kernel from.")
    want = [int(d) for d in conv.kernel.shape]
    got = as_shape(evidence.answer("conv1_kernel_shape"), name="conv1_kernel_shape", length=4)
    if got != want:
        fail(f"conv1_kernel_shape is {tuple(got)}, but your first Conv2D's kernel has a "
             f"different shape: read it from layer.kernel.shape (height, width, in, out).")


def test_q3_frozen_counts(evidence):
    """The predicted split must match the model with both Conv2D layers frozen, and the
    submitted cnn_model must be fully trainable again, as the notebook asks."""
    import keras

    loaded = evidence.model("cnn_model")
    still_frozen = [r["name"] for r in layer_rows(loaded)
                    if r["type"] != "InputLayer" and not r["trainable"]]
    try:
        model = keras.models.clone_model(loaded)
    except GRADER_BUGS:
        raise
    except Exception:  # a loadable model Keras cannot rebuild: say so, never "could not be checked"
        fail("cnn_model could not be rebuilt from its saved layers to count its frozen parameters: "
             "build it from standard layers as in Part 2.")
    for layer in model.layers:
        layer.trainable = type(layer).__name__ != "Conv2D"
    want = weight_counts(model)
    got_t = as_int(evidence.answer("frozen_trainable_params"), name="frozen_trainable_params")
    got_n = as_int(evidence.answer("frozen_non_trainable_params"),
                   name="frozen_non_trainable_params")
    if (got_t, got_n) != (want["trainable"], want["non_trainable"]):
        fail(f"With both Conv2D layers frozen, your model has a different split than "
             f"{fmt(got_t)} trainable / {fmt(got_n)} non-trainable: frozen layers' weights "
             f"move to non-trainable, and the total ({fmt(want['total'])}) stays the same.")
    if still_frozen:
        fail(f"Your counts are right, but cnn_model was handed in with {', '.join(still_frozen)} "
             f"still frozen: set trainable = True on them again once you have counted "
             f"(cnn_model is graded as a fully trainable model).")
