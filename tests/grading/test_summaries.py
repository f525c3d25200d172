"""The model summary in the feedback shows which layers of a nested backbone train, which
is what the fine-tuning item judges (a plain "trainable: yes" cannot show it)."""

import pytest

from autograder.grading.evidence import layer_rows
from autograder.grading.report import _trainable_text


@pytest.fixture(scope="module")
def keras():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def nested(keras, open_last: int | None = None, open_first: int = 0):
    inner = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(4, name=f"d{i}") for i in range(6)],
                             name="backbone")
    for i, layer in enumerate(inner.layers):
        layer.trainable = (open_last is not None and i >= len(inner.layers) - open_last) or i < open_first
    x = keras.Input((4,))
    outer = keras.Model(x, keras.layers.Dense(1, name="head")(inner(x)))
    return {r["name"]: r for r in layer_rows(outer)}


def test_the_last_layers_open_are_named(keras):
    rows = nested(keras, open_last=2)
    assert rows["backbone"]["inner_trainable"] == {"open": 2, "total": 6, "last": True}
    assert _trainable_text(rows["backbone"]) == "the last 2 of 6 layers"
    assert "inner_trainable" not in rows["head"] and _trainable_text(rows["head"]) == "yes"


def test_open_layers_elsewhere_are_counted_not_called_last(keras):
    rows = nested(keras, open_first=2)
    assert _trainable_text(rows["backbone"]) == "2 of 6 layers"


def test_a_frozen_backbone_freezes_all_its_layers(keras):
    rows = nested(keras, open_last=6)
    assert _trainable_text(rows["backbone"]) == "yes (all 6 layers)"
    inner = nested(keras, open_last=None)
    assert _trainable_text(inner["backbone"]) == "no (all 6 layers frozen)"
