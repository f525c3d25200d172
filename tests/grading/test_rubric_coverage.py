"""One source for every check: each hidden test of the source notebook is carried into the rubric.

Every ``assert`` inside a ``### BEGIN HIDDEN TESTS`` region of the source notebook is listed
here, under its cell's ``grade_id``, with the rubric check that carries its intent (the
rubric never runs in the student's kernel, so it re-establishes each fact from exported
evidence). An assert added to the notebook without a rubric check, a mapping to a check that
does not exist, or a hidden cell without a rubric item, fails this test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "source" / "cnn_transfer" / "cnn_transfer.ipynb"
RUBRIC = REPO / "autograder" / "rubric" / "cnn_transfer"
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)

# grade_id -> {hidden assert (as ast.unparse writes it): (rubric check, how it carries it)}
COVERAGE: dict[str, dict[str, tuple[str, str]]] = {
    "q1_conv_params": {
        "conv1_params == 416 and conv2_params == 4128":
            ("test_q1_conv_params", "compared with the key, calibrated from the reference"),
        "_probe.count_params() == conv1_params":
            ("test_q1_conv_params", "the key's value is the reference's Conv2D count"),
    },
    "q1_output_shapes": {
        "(shape_stride1_valid, shape_stride2_valid, shape_stride2_same) == ((223, 223, 32), (112, 112, 32), (112, 112, 32))":
            ("test_q1_output_shapes", "compared with the key"),
        "_answer == tuple(_layer.compute_output_shape((None, 224, 224, 3))[1:])":
            ("test_q1_output_shapes", "the key holds the reference's shapes"),
    },
    "q2_cnn_architecture": {
        "_kinds == ['InputLayer', 'Rescaling', 'Conv2D', 'MaxPooling2D', 'Conv2D', 'MaxPooling2D', 'Flatten', 'Dense', 'Dense']":
            ("test_q2_cnn_architecture", "layer types of the saved model against the key"),
        "[l.count_params() for l in _convs] == [416, 4128]":
            ("test_q2_cnn_architecture", "Conv2D parameters and output shapes against the key"),
        "[l.kernel_size for l in _convs] == [(2, 2), (2, 2)]":
            ("test_q2_cnn_architecture", "Conv2D parameters and output shapes fix the kernel"),
        "cnn_model.layers[-1].activation.__name__ == 'sigmoid'":
            ("test_q2_cnn_architecture", "last layer Dense(1, sigmoid) from the saved config"),
    },
    "q2_cnn_compile": {
        "isinstance(cnn_model.optimizer, keras.optimizers.Adam)":
            ("test_q2_cnn_compile", "optimizer class from the file's compile config"),
        "_compiled['loss'] == 'binary_crossentropy' and _compiled['metrics'] == ['accuracy']":
            ("test_q2_cnn_compile", "loss and metrics from the file's compile config"),
    },
    "q2_cnn_trained": {
        "len(cnn_history.history['loss']) == S.cnn_epochs":
            ("test_q2_cnn_trained", "history length against the profile's epochs"),
        "all(np.isfinite(cnn_history.history['loss']))":
            ("test_q2_cnn_trained", "finite history values"),
        "cnn_model.optimizer.iterations.numpy() == S.cnn_epochs * int(np.ceil(len(x_train) / BATCH_SIZE))":
            ("test_q2_cnn_trained", "the saved optimizer's iteration counter against the key"),
    },
    "q2_cnn_accuracy": {
        "all((0.0 <= v <= 1.0 for v in _val))":
            ("test_q2_cnn_trained", "accuracies in the history lie in 0..1"),
        "max(_val) >= 0.5":
            ("test_q2_cnn_accuracy", "hidden-split accuracy above the majority rate + 2 SE"),
    },
    "q3_kernel_shape": {
        "conv1_kernel_shape == (2, 2, 3, 32)":
            ("test_q3_kernel_shape", "against the saved model's first Conv2D kernel"),
        "conv1_kernel_shape == tuple(cnn_model.get_layer('conv1').kernel.shape)":
            ("test_q3_kernel_shape", "against the saved model's first Conv2D kernel"),
    },
    "q3_frozen_counts": {
        "frozen_non_trainable_params == 416 + 4128":
            ("test_q3_frozen_counts", "counts of a clone with both Conv2D frozen"),
        "frozen_trainable_params + frozen_non_trainable_params == cnn_model.count_params()":
            ("test_q3_frozen_counts", "counts of a clone with both Conv2D frozen"),
        "all((l.trainable for l in cnn_model.layers))":
            ("test_q3_frozen_counts", "every layer of the saved cnn_model trainable again"),
    },
    "q4_backbone_facts": {
        "backbone_layers == 175": ("test_q4_backbone_facts", "against the key"),
        "backbone_params == 23587712": ("test_q4_backbone_facts", "against the key"),
        "embedding_shape == (IMAGE_SIZE // 32, IMAGE_SIZE // 32, 2048)":
            ("test_q4_backbone_facts", "against the key (per profile)"),
    },
    "q4_head_architecture": {
        "tl_model.count_params() == _units * 256 + 256 + 256 + 1":
            ("test_q4_head_architecture", "parameter total against the key"),
        "[type(l).__name__ for l in tl_model.layers] == ['InputLayer', 'Flatten', 'Dense', 'Dropout', 'Dense']":
            ("test_q4_head_architecture", "layer types against the key"),
        "tl_model.count_params() == 25690625":
            ("test_q4_head_architecture", "parameter total against the key (full profile)"),
    },
    "q4_head_accuracy": {
        "len(tl_history.history['val_accuracy']) == S.head_epochs":
            ("test_q4_head_accuracy", "history length and the saved optimizer's steps"),
        "all((0.0 <= v <= 1.0 for v in tl_history.history['val_accuracy']))":
            ("test_q4_head_accuracy", "accuracies in the history lie in 0..1"),
    },
    "q5_finetune_frozen": {
        "_last[0] == 'conv5_block3_1_conv' and _last[-1] == 'conv5_block3_out'":
            ("test_q5_finetune_frozen", "trainable pattern by position, layer types as ResNet50's"),
        "not any((l.trainable for l in backbone.layers[:-10]))":
            ("test_q5_finetune_frozen", "trainable pattern against the key"),
        "all((l.trainable for l in backbone.layers[-10:]))":
            ("test_q5_finetune_frozen", "trainable pattern against the key"),
        "ft_trainable_params == 4465664 + _head":
            ("test_q5_finetune_frozen", "answer against the saved model's trainable count and the key"),
        "ft_model.count_params() == 23587712 + _head":
            ("test_q5_finetune_frozen", "total parameters against the key"),
        "not any((isinstance(l, keras.layers.Lambda) for l in ft_model.layers))":
            ("test_q5_finetune_frozen", "the model loads with safe_mode=True (no Lambda code)"),
        "(ft_trainable_params, ft_model.count_params()) == (30156289, 49278337)":
            ("test_q5_finetune_frozen", "counts against the key (full profile)"),
    },
    "q5_finetune_accuracy": {
        "len(ft_history.history['val_accuracy']) == S.finetune_epochs":
            ("test_q5_finetune_accuracy", "history length against the profile's epochs"),
        "ft_tail_max_diff < 0.0001":
            ("test_q5_finetune_accuracy", "ft_model on images = its tail on trusted activations"),
        "all((0.0 <= v <= 1.0 for v in ft_history.history['val_accuracy']))":
            ("test_q5_finetune_accuracy", "accuracies in the history lie in 0..1"),
    },
    "q5_model_choice": {
        "chosen_model == ('ft' if ft_val > tl_val else 'tl')":
            ("test_q5_model_choice", "the same rule on validation accuracies the grader recomputes"),
    },
}


PC_SOURCE = REPO / "source" / "param_counting" / "param_counting.ipynb"
PC_RUBRIC = REPO / "autograder" / "rubric" / "param_counting"
PC_COVERAGE: dict[str, dict[str, tuple[str, str]]] = {
    "q1_dense_conv_params": {
        "(dense_params, conv_params) == (6464, 448)":
            ("test_q1_dense_conv_params", "compared with the key, calibrated from the reference"),
        "_probe.count_params() == dense_params":
            ("test_q1_dense_conv_params", "the key's value is the reference's count"),
    },
    "q1_pooling": {
        "pool_params == 0 and tuple(pool_output_shape) == (13, 13, 16)":
            ("test_q1_pooling", "compared with the key"),
    },
    "q2_batchnorm": {
        "(bn_params, bn_trainable_params, bn_non_trainable_params) == (64, 32, 32)":
            ("test_q2_batchnorm", "compared with the key"),
        "_probe.count_params() == bn_params":
            ("test_q2_batchnorm", "the key holds the reference's counts"),
        "sum((int(np.prod(w.shape)) for w in _probe.trainable_weights)) == bn_trainable_params":
            ("test_q2_batchnorm", "the key holds the reference's counts"),
    },
    "q2_embedding": {
        "embedding_params == 8000": ("test_q2_embedding", "compared with the key"),
    },
    "q3_counting_model": {
        "total_params == counting_model.count_params() == 27562":
            ("test_q3_counting_model", "layer types and parameters against the key; answers "
                                       "against the saved model's own counts"),
        "(trainable_params, non_trainable_params) == (27530, 32)":
            ("test_q3_counting_model", "answers against the saved model's own counts"),
    },
    "q3_frozen_counts": {
        "(frozen_trainable_params, frozen_non_trainable_params) == (27050, 512)":
            ("test_q3_frozen_counts", "counts of a fresh copy with Conv2D and BN frozen"),
        "all((layer.trainable for layer in counting_model.layers))":
            ("test_q3_frozen_counts", "every layer of the saved model trainable again"),
    },
    "q4_frozen_base": {
        "(ft_frozen_trainable_params, ft_frozen_non_trainable_params) == (9, 256)":
            ("test_q4_frozen_base", "counts of a fresh copy with base frozen, and the key"),
    },
    "q4_finetune_counts": {
        "(finetune_trainable_params, finetune_non_trainable_params) == (233, 32)":
            ("test_q4_finetune_counts", "the saved model's own counts, and the key"),
        "sum((int(np.prod(w.shape)) for w in ft_model.trainable_weights)) == 233":
            ("test_q4_finetune_counts", "the saved model's own trainable count"),
    },
    "q4_bn_inference": {
        "_same": ("test_q4_bn_inference", "training-mode output = inference-mode output"),
        "np.allclose(base.get_layer('base_bn').moving_mean.numpy(), 0.0)":
            ("test_q4_bn_inference", "the saved BN's moving statistics still (0, 1)"),
    },
}


def hidden_asserts(source: Path = SOURCE) -> dict[str, list[str]]:
    nb = nbformat.read(source, as_version=4)
    found: dict[str, list[str]] = {}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for block in HIDDEN.findall(cell.source):
            asserts = [ast.unparse(n.test) for n in ast.walk(ast.parse(block))
                       if isinstance(n, ast.Assert)]
            found.setdefault(grade_id, []).extend(asserts)
    return found


def rubric_checks(rubric: Path = RUBRIC) -> set[str]:
    names = set()
    for path in rubric.glob("test_*.py"):
        names |= {n.name for n in ast.parse(path.read_text()).body
                  if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return names


@pytest.mark.parametrize("source, rubric, coverage", [
    (SOURCE, RUBRIC, COVERAGE), (PC_SOURCE, PC_RUBRIC, PC_COVERAGE)],
    ids=["cnn_transfer", "param_counting"])
def test_every_hidden_test_is_carried_into_the_rubric(source, rubric, coverage):
    hidden = hidden_asserts(source)
    checks = rubric_checks(rubric)
    missing, stale, unknown = [], [], []
    for grade_id, asserts in hidden.items():
        mapped = coverage.get(grade_id, {})
        missing += [f"{grade_id}: {a}" for a in asserts if a not in mapped]
        stale += [f"{grade_id}: {a}" for a in mapped if a not in asserts]
        unknown += [f"{grade_id} -> {check}" for check, _ in mapped.values() if check not in checks]
        if f"test_{grade_id}" not in checks:
            unknown.append(f"{grade_id} has hidden tests but no rubric item test_{grade_id}")
    stale += [g for g in coverage if g not in hidden]
    assert missing == [], "hidden tests with no rubric check:\n" + "\n".join(missing)
    assert stale == [], "mapped hidden tests the notebook no longer has:\n" + "\n".join(stale)
    assert unknown == [], "\n".join(unknown)


def test_every_graded_cell_is_a_rubric_item_with_points():
    """Every autograded cell of the notebook is a rubric check and has points in the config."""
    from autograder.course.config import load_course

    points = load_course(REPO).config.assignment("cnn_transfer").points
    nb = nbformat.read(SOURCE, as_version=4)
    graded = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
              if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert set(graded) == set(points)
    assert {f"test_{g}" for g in graded} <= rubric_checks()
