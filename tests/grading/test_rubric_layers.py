"""How cnn_transfer's rubric reads a model's layers: the same network written another way reads
as the same architecture, and a different network does not."""

from __future__ import annotations

import pytest

from autograder.grading.evidence import layer_rows
from autograder.rubric.cnn_transfer.shapes import with_activations_folded, without_inputs

keras = pytest.importorskip("keras")
layers = keras.layers


def _read(*stack) -> list[tuple[str, object, int]]:
    """(type, activation, parameters) per layer, as the rubric compares them."""
    model = keras.Sequential([keras.Input((8, 8, 3)), *stack])
    return [(r["type"], r["config"].get("activation"), r["params"])
            for r in with_activations_folded(without_inputs(layer_rows(model)))]


def test_an_activation_written_as_its_own_layer_reads_as_the_layers_activation():
    """Is Conv2D/Dense followed by Activation("relu") or a plain ReLU() read as the layer with
    activation="relu", with the same parameters, and a final Activation("sigmoid") as a
    sigmoid Dense?"""
    inline = _read(layers.Conv2D(4, 2, activation="relu"), layers.Flatten(),
                   layers.Dense(5, activation="relu"), layers.Dense(1, activation="sigmoid"))
    separate = _read(layers.Conv2D(4, 2), layers.ReLU(), layers.Flatten(),
                     layers.Dense(5), layers.Activation("relu"),
                     layers.Dense(1), layers.Activation("sigmoid"))
    assert separate == inline
    assert [t for t, _, _ in inline] == ["Conv2D", "Flatten", "Dense", "Dense"]


@pytest.mark.parametrize("stack, why", [
    ((layers.Conv2D(4, 2), layers.LeakyReLU(), layers.Flatten(), layers.Dense(1, activation="sigmoid")),
     "a leaky relu is another function"),
    ((layers.Conv2D(4, 2), layers.ReLU(max_value=6.0), layers.Flatten(), layers.Dense(1, activation="sigmoid")),
     "a capped relu is another function"),
    ((layers.Conv2D(4, 2, activation="relu"), layers.Activation("relu"), layers.Flatten(),
      layers.Dense(1, activation="sigmoid")),
     "an activation after one that has its own is an extra layer"),
    ((layers.Conv2D(4, 2, activation="relu"), layers.MaxPooling2D(), layers.Activation("relu"),
      layers.Flatten(), layers.Dense(1, activation="sigmoid")),
     "an activation after a layer without one (pooling) is an extra layer"),
])
def test_any_other_activation_layer_stays_a_layer_of_its_own(stack, why):
    types = [t for t, _, _ in _read(*stack)]
    assert len(types) == len(stack), why
