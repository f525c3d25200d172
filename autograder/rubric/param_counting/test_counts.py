"""Parts 1 and 2: counting by hand (Dense, Conv2D, pooling, BatchNormalization, Embedding)."""

from autograder.grading.evidence import fail
from autograder.rubric.param_counting.counting import answers, as_shape


def test_q1_dense_conv_params(evidence, key):
    wrong = answers(evidence, key, ("dense_params", "conv_params"))
    if wrong:
        fail(f"Not right: {', '.join(wrong)}. A Dense layer has inputs × units weights plus one "
             "bias per unit; a Conv2D layer has (kh·kw·channels in + 1) × filters.")


def test_q1_pooling(evidence, key):
    wrong = answers(evidence, key, ("pool_params",))
    shape = as_shape(evidence.answer("pool_output_shape"), name="pool_output_shape", length=3)
    if shape != list(key["answers"]["pool_output_shape"]):
        wrong.append("pool_output_shape")
    if wrong:
        fail(f"Not right: {', '.join(wrong)}. Pooling takes a maximum (nothing to learn); a 2×2 "
             "pool halves height and width and keeps the channels.")


def test_q2_batchnorm(evidence, key):
    wrong = answers(evidence, key, ("bn_params", "bn_trainable_params", "bn_non_trainable_params"))
    if wrong:
        fail(f"Not right: {', '.join(wrong)}. BatchNormalization keeps four numbers per channel: "
             "gamma and beta are learned (trainable); the moving mean and variance are not.")


def test_q2_embedding(evidence, key):
    if answers(evidence, key, ("embedding_params",)):
        fail("embedding_params is not right: an Embedding layer is a table with one learned "
             "vector (output_dim numbers) per token id (input_dim rows).")
