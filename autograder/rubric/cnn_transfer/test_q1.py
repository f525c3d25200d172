"""Question 1: convolution arithmetic (parameters with bias, output sizes)."""

from autograder.grading.evidence import fail
from autograder.rubric.cnn_transfer.shapes import as_int, as_shape, fmt


def test_q1_conv_params(evidence, key):
    for name, hint in (("conv1_params", "2·2·3 weights per filter"),
                       ("conv2_params", "2·2·32 weights per filter")):
        got = as_int(evidence.answer(name), name=name)
        want = key["answers"][name]
        if got != want:
            fail(f"{name} is {fmt(got)}, which is not right: count {hint}, times the number "
                 f"of filters, plus one bias per filter.")


def test_q1_output_shapes(evidence, key):
    wrong = []
    for name in ("shape_stride1_valid", "shape_stride2_valid", "shape_stride2_same"):
        got = as_shape(evidence.answer(name), name=name, length=3)
        if got != list(key["answers"][name]):
            wrong.append(f"{name} = {tuple(got)}")
    if wrong:
        fail("Not right: " + "; ".join(wrong) + ". Output side = floor((n + 2·padding − kernel) "
             "/ stride) + 1 for 'valid'; 'same' gives ceil(n / stride).")
