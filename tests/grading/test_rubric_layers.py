"""How cnn_transfer's rubric reads a model's layers: the same network written another way reads
as the same architecture, and a different network does not."""

from __future__ import annotations

import pytest

from autograder.grading.evidence import layer_rows
from autograder.rubric.cnn_transfer.shapes import head_problem, with_activations_folded, without_inputs

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


def _head(*stack) -> list[dict]:
    return layer_rows(keras.Sequential([keras.Input((3, 3, 8)), *stack]))


KEY_HEAD = (layers.Flatten(), layers.Dense(6, activation="relu"), layers.Dropout(0.5),
            layers.Dense(1, activation="sigmoid"))


@pytest.mark.parametrize("stack, why", [
    (KEY_HEAD, "the prescribed head itself"),
    ((layers.Flatten(), layers.Dense(6), layers.ReLU(), layers.Dropout(rate=1 / 2),
      layers.Dense(1), layers.Activation("sigmoid")), "activations as layers, the rate as 1 / 2"),
])
def test_the_prescribed_head_written_another_way_has_no_problem(stack, why):
    assert head_problem("tl_model", _head(*stack), _head(*KEY_HEAD)) is None, why


@pytest.mark.parametrize("stack, said", [
    ((layers.Flatten(), layers.Dense(6, activation="relu"), layers.Dropout(0.1),
      layers.Dense(1, activation="sigmoid")), "drops 0.1 of its inputs"),
    ((layers.Flatten(), layers.Dense(6, activation="tanh"), layers.Dropout(0.5),
      layers.Dense(1, activation="sigmoid")), "uses activation 'tanh'"),
    ((layers.Flatten(), layers.Dense(6, activation="relu"), layers.Dense(1, activation="sigmoid")),
     "should be Flatten → Dense → Dropout → Dense; yours is Flatten → Dense → Dense"),
])
def test_a_head_that_differs_from_the_prescribed_one_is_named(stack, said):
    problem = head_problem("tl_model", _head(*stack), _head(*KEY_HEAD))
    assert problem is not None and said in problem, problem
