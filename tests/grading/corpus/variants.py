"""A labelled corpus: variants of the reference solution, each made by asserted edits.

Every variant starts from the source notebook as a student who solved everything would hand
it in (hidden tests stripped) and changes it only through :class:`Edit` (a find/replace on the
cell with a given ``grade_id`` that must match exactly once) or :class:`Insert` (a new cell
after a given cell). An edit that no longer matches the source raises :class:`CorpusError`, so
the corpus follows the notebook or fails loudly; it never drifts into testing nothing.

Labels: ``fails`` lists the rubric items the variant must fail, in every grading mode;
``fails_if_assessable`` lists accuracy items that must fail wherever the answer key says the
item is assessable (elsewhere they are labelled not assessable, never passed). Every other
item must pass, or be not assessable by the key.

What is graded (:data:`GRADED`), each notebook one more sandboxed run of the whole notebook
(minutes of CI on a slow machine):

* the valid variants grouped (:func:`combined`) where their changes touch different cells and
  nothing the training's random draws follow: a valid change that cost a point costs it in its
  group too, and a full-marks notebook then holds every change at once;
* each mistake either alone or in a pair (:func:`paired`) with a mistake from the other half
  of the notebook. The halves are independent by the notebook's construction: the late half
  (ResNet50, the head, fine-tuning and the choice, :data:`LATE_CELLS`) reads nothing the early
  half (questions 1-3, the CNN) defines except the data, which no early cell changes, and it
  reseeds before each model it builds; its items (:data:`LATE_ITEMS_PREFIXES`) judge only the late
  half's models and answers. So each item's grade follows from one half's cells, and a pair
  must lose exactly the union of its two mistakes' items: a mistake that cost an item of its
  own half more than its labels say shows up just as it would alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.course.samples import reference_submission


class CorpusError(AssertionError):
    """A variant's edit does not apply to the source notebook exactly once."""


@dataclass(frozen=True)
class Edit:
    grade_id: str
    old: str
    new: str


@dataclass(frozen=True)
class Insert:
    """A new code cell right after the cell ``after``: ``source``, or a copy of the cells
    named in ``copy_of`` (a re-run), in that order."""

    after: str
    source: str = ""
    copy_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variant:
    name: str
    why: str
    changes: tuple[Edit | Insert, ...] = ()
    fails: frozenset[str] = frozenset()
    fails_if_assessable: frozenset[str] = frozenset()

    @property
    def valid(self) -> bool:
        return not self.fails and not self.fails_if_assessable


def _cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    found = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    if len(found) != 1:
        raise CorpusError(f"the source notebook has {len(found)} cells with grade_id {grade_id!r}")
    return found[0]


def apply(nb: nbformat.NotebookNode, change: Edit | Insert, *, variant: str) -> None:
    if isinstance(change, Edit):
        cell = _cell(nb, change.grade_id)
        count = cell.source.count(change.old)
        if count != 1:
            raise CorpusError(f"variant {variant!r}: {change.old!r} occurs {count} times in cell "
                              f"{change.grade_id!r} (exactly once required); update the corpus to "
                              f"the notebook's new solution")
        cell.source = cell.source.replace(change.old, change.new)
        return
    anchor = _cell(nb, change.after)
    index = nb.cells.index(anchor)
    sources = [_cell(nb, g).source for g in change.copy_of] if change.copy_of else [change.source]
    for offset, source in enumerate(sources, 1):
        nb.cells.insert(index + offset, nbformat.v4.new_code_cell(source))


def build(source: Path, variant: Variant) -> nbformat.NotebookNode:
    nb = copy.deepcopy(reference_submission(source))
    for change in variant.changes:
        apply(nb, change, variant=variant.name)
    return nb


def touched(variant: Variant) -> set[str]:
    """The cells a variant's changes edit, or insert a cell after."""
    return {c.grade_id if isinstance(c, Edit) else c.after for c in variant.changes}


def combined(name: str, parts: tuple[Variant, ...]) -> Variant:
    """One notebook holding every change of ``parts``: valid variants whose changes touch
    different cells (else :class:`CorpusError`)."""
    seen: set[str] = set()
    for part in parts:
        if not part.valid:
            raise CorpusError(f"{part.name} is a mistake: each mistake is graded on its own")
        if touched(part) & seen:
            raise CorpusError(f"{part.name} changes a cell another part of {name} changes: "
                              f"{sorted(touched(part) & seen)}")
        seen |= touched(part)
    return Variant(name, " + ".join(p.name for p in parts),
                   tuple(c for p in parts for c in p.changes))


LATE_CELLS = frozenset({"a_backbone", "a_head_architecture", "a_head_fit", "a_finetune_model",
                        "a_finetune_fit", "a_model_choice"})
"""The answer cells of the notebook's late half (questions 4 and 5)."""
LATE_ITEMS_PREFIXES = ("q4_", "q5_")
"""Rubric items of the late half: they judge the backbone, tl_model, ft_model and the choice."""


def _halves_lost(variant: Variant) -> set[str]:
    """Which halves of the notebook (``early``, ``late``) the items ``variant`` loses are in."""
    return {"late" if item.startswith(LATE_ITEMS_PREFIXES) else "early"
            for item in variant.fails | variant.fails_if_assessable}


def paired(name: str, early: Variant, late: Variant) -> Variant:
    """One notebook holding two mistakes, ``early`` changing only cells of questions 1-3 and
    losing only their items, ``late`` only cells of :data:`LATE_CELLS` and their items (else
    :class:`CorpusError`); it must lose exactly both mistakes' items."""
    if early.valid or late.valid:
        raise CorpusError(f"{name}: a pair holds two mistakes (valid variants go in VALID_GROUPS)")
    if touched(early) & LATE_CELLS or not _halves_lost(early) <= {"early"}:
        raise CorpusError(f"{early.name} changes or loses something of questions 4-5: it cannot "
                          f"be the early half of {name}")
    if not touched(late) <= LATE_CELLS or not _halves_lost(late) <= {"late"}:
        raise CorpusError(f"{late.name} changes or loses something of questions 1-3: it cannot "
                          f"be the late half of {name}")
    return Variant(name, f"{early.name} + {late.name}", early.changes + late.changes,
                   fails=early.fails | late.fails,
                   fails_if_assessable=early.fails_if_assessable | late.fails_if_assessable)


def write_corpus(source: Path, out_dir: Path, notebook: str, variants: list[Variant] | None = None
                 ) -> dict[str, Path]:
    written = {}
    for variant in variants or GRADED:
        path = out_dir / variant.name / notebook
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(build(source, variant), path)
        written[variant.name] = path
    return written


F = frozenset

# Cell sources the variants edit (each must occur exactly once in its cell).
FIT_CNN = "cnn_history = cnn_model.fit(train_ds, validation_data=(x_val, y_val), epochs=S.cnn_epochs, verbose=2)"
FREEZE = "for layer in backbone.layers[:-10]:\n    layer.trainable = False"
CHOICE = 'chosen_model = "ft" if ft_val > tl_val else "tl"'
UNFREEZE = ('### BEGIN SOLUTION\nfor name in ("conv1", "conv2"):\n    '
            'cnn_model.get_layer(name).trainable = True\n### END SOLUTION')
CNN_LAYERS = '''inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
x = layers.Rescaling(1 / 255)(inputs)
x = layers.Conv2D(32, (2, 2), activation="relu", name="conv1")(x)
x = layers.MaxPooling2D()(x)
x = layers.Conv2D(32, (2, 2), activation="relu", name="conv2")(x)
x = layers.MaxPooling2D()(x)
x = layers.Flatten()(x)
x = layers.Dense(64, activation="relu")(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
cnn_model = keras.Model(inputs, outputs, name="cnn")'''
TL_HEAD = '''emb_in = keras.Input(shape=embedding_shape)
x = layers.Flatten()(emb_in)
x = layers.Dense(256, activation="relu")(x)
x = layers.Dropout(0.5)(x)
tl_out = layers.Dense(1, activation="sigmoid")(x)
tl_model = keras.Model(emb_in, tl_out, name="tl_head")'''

VARIANTS: list[Variant] = [
    # ------------------------------------------------------------------ valid: full marks
    Variant("reference", "the source solution itself"),
    Variant("cnn_sequential", "the same CNN written with keras.Sequential",
            (Edit("a_cnn_architecture", CNN_LAYERS, '''cnn_model = keras.Sequential([
    keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
    layers.Rescaling(1 / 255),
    layers.Conv2D(32, (2, 2), activation="relu", name="conv1"),
    layers.MaxPooling2D(),
    layers.Conv2D(32, (2, 2), activation="relu", name="conv2"),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(64, activation="relu"),
    layers.Dense(1, activation="sigmoid"),
], name="cnn")'''),)),
    Variant("cnn_wider_dropout", "a wider hidden Dense and Dropout after Flatten (the rubric allows both)",
            (Edit("a_cnn_architecture", "x = layers.Flatten()(x)\n", "x = layers.Flatten()(x)\nx = layers.Dropout(0.25)(x)\n"),
             Edit("a_cnn_architecture", 'layers.Dense(64, activation="relu")', 'layers.Dense(128, activation="relu")'))),
    Variant("other_names_and_spellings", "other names for every intermediate tensor; loss and "
            "optimizer spelled as an object and a string Keras accepts for the same thing",
            (Edit("a_cnn_architecture", CNN_LAYERS, '''img = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
h = layers.Rescaling(1 / 255)(img)
h = layers.Conv2D(32, (2, 2), activation="relu", name="conv1")(h)
h = layers.MaxPooling2D()(h)
h = layers.Conv2D(32, (2, 2), activation="relu", name="conv2")(h)
h = layers.MaxPooling2D()(h)
h = layers.Flatten()(h)
h = layers.Dense(64, activation="relu")(h)
prob = layers.Dense(1, activation="sigmoid")(h)
cnn_model = keras.Model(img, prob)'''),
             Edit("a_head_architecture", TL_HEAD, '''features = keras.Input(shape=embedding_shape)
z = layers.Flatten()(features)
z = layers.Dense(256, activation="relu")(z)
z = layers.Dropout(rate=1 / 2)(z)
tl_model = keras.Model(features, layers.Dense(1, activation="sigmoid")(z))'''),
             Edit("a_cnn_compile", 'loss="binary_crossentropy", optimizer=keras.optimizers.Adam()',
                  'loss=keras.losses.BinaryCrossentropy(), optimizer="adam"'))),
    Variant("numpy_ints", "every count and shape as NumPy integers (what np.prod and friends return)",
            (Edit("a_conv_params", "conv1_params = (2 * 2 * 3 + 1) * 32", "conv1_params = np.int64((2 * 2 * 3 + 1) * 32)"),
             Edit("a_conv_params", "conv2_params = (2 * 2 * 32 + 1) * 32", "conv2_params = np.prod([2 * 2 * 32 + 1, 32])"),
             Edit("a_output_shapes", "shape_stride2_same = (same_side(224, 2), same_side(224, 2), 32)",
                  "shape_stride2_same = tuple(np.array([same_side(224, 2), same_side(224, 2), 32]))"),
             Edit("a_kernel_shape", "conv1_kernel_shape = tuple(int(d) for d in conv1.kernel.shape)",
                  "conv1_kernel_shape = tuple(np.array(conv1.kernel.shape))"),
             Edit("a_frozen_counts", "frozen_trainable_params = cnn_model.count_params() - frozen_non_trainable_params",
                  "frozen_trainable_params = np.int64(cnn_model.count_params()) - frozen_non_trainable_params"),
             Edit("a_backbone", "backbone_params = backbone.count_params()",
                  "backbone_params = np.int64(backbone.count_params())"),
             Edit("a_finetune_model", "ft_trainable_params = int(sum(np.prod(w.shape) for w in ft_model.trainable_weights))",
                  "ft_trainable_params = sum(np.prod(w.shape) for w in ft_model.trainable_weights)"),
             # a list holds the same answer as the tuple asked for (the grader receives lists)
             Edit("a_output_shapes", "shape_stride1_valid = (valid_side(224, 2, 1), valid_side(224, 2, 1), 32)",
                  "shape_stride1_valid = [valid_side(224, 2, 1), valid_side(224, 2, 1), 32]"))),
    Variant("freeze_cnn_by_loop", "freezing and unfreezing the Conv2D layers by a loop over layer types",
            (Edit("a_frozen_counts", 'for name in ("conv1", "conv2"):\n    cnn_model.get_layer(name).trainable = False',
                  "for layer in cnn_model.layers:\n    if isinstance(layer, layers.Conv2D):\n        layer.trainable = False"),
             Edit("a_frozen_counts", UNFREEZE, "### BEGIN SOLUTION\nfor layer in cnn_model.layers:\n    layer.trainable = True\n### END SOLUTION"))),
    Variant("freeze_backbone_by_flags", "the last 10 layers opened by an index test on every layer",
            (Edit("a_finetune_model", FREEZE,
                  "for i, layer in enumerate(backbone.layers):\n    layer.trainable = i >= len(backbone.layers) - 10"),)),
    Variant("extra_cells", "extra cells that look around (summaries, prints, a plot) between the graded ones",
            (Insert("a_cnn_fit", "cnn_model.summary()\nprint(cnn_history.history['val_accuracy'])"),
             Insert("a_head_fit", "print(tl_model.count_params(), emb_train.shape)"),
             Insert("a_finetune_fit", "plot_history(ft_history, 'again')\nprint(ft_model.layers[-1].get_config())"))),
    Variant("rerun_cnn_cells", "the CNN built, compiled and trained again from scratch (a re-run of those cells)",
            (Insert("a_cnn_fit", copy_of=("a_cnn_architecture", "a_cnn_compile", "a_cnn_fit")),)),
    Variant("activations_as_layers", "each activation of the CNN and the head written as a layer of "
            "its own (ReLU(), Activation(...)) after a layer without one: the same functions",
            (Edit("a_cnn_architecture", 'x = layers.Conv2D(32, (2, 2), activation="relu", name="conv1")(x)',
                  'x = layers.Conv2D(32, (2, 2), name="conv1")(x)\nx = layers.ReLU()(x)'),
             Edit("a_cnn_architecture", 'x = layers.Conv2D(32, (2, 2), activation="relu", name="conv2")(x)',
                  'x = layers.Conv2D(32, (2, 2), name="conv2")(x)\nx = layers.Activation("relu")(x)'),
             Edit("a_cnn_architecture", 'x = layers.Dense(64, activation="relu")(x)',
                  'x = layers.Dense(64)(x)\nx = layers.Activation("relu")(x)'),
             Edit("a_cnn_architecture", 'outputs = layers.Dense(1, activation="sigmoid")(x)',
                  'outputs = layers.Activation("sigmoid")(layers.Dense(1)(x))'),
             Edit("a_head_architecture", 'x = layers.Dense(256, activation="relu")(x)',
                  'x = layers.ReLU()(layers.Dense(256)(x))'),
             Edit("a_head_architecture", 'tl_out = layers.Dense(1, activation="sigmoid")(x)',
                  'tl_out = layers.Activation("sigmoid")(layers.Dense(1)(x))'))),
    Variant("backbone_training_false", "ft_model calls the backbone with training=False, as the Keras "
            "fine-tuning guide advises",
            (Edit("a_finetune_model", "x = backbone(preprocess_input(image_in))",
                  "x = backbone(preprocess_input(image_in), training=False)"),)),
    Variant("sequential_heads", "tl_model written with keras.Sequential; ft_model's head as a nested "
            "Sequential of the ft_head layers, its relu written as a layer of its own",
            (Edit("a_head_architecture", TL_HEAD, '''tl_model = keras.Sequential([
    keras.Input(shape=embedding_shape),
    layers.Flatten(),
    layers.Dense(256, activation="relu"),
    layers.Dropout(0.5),
    layers.Dense(1, activation="sigmoid"),
], name="tl_head")'''),
             Edit("a_finetune_model", "x = backbone(preprocess_input(image_in))\nfor layer in ft_head:\n    x = layer(x)",
                  'x = keras.Sequential(ft_head, name="head")(backbone(preprocess_input(image_in)))'),
             Edit("a_finetune_model", 'layers.Dense(256, activation="relu"),',
                  'layers.Dense(256),\n    layers.Activation("relu"),'))),
    Variant("answers_read_from_keras", "the shapes and counts read from Keras objects instead of "
            "worked out by hand, and the choice's rule written the other way round",
            (Edit("a_output_shapes", "shape_stride1_valid = (valid_side(224, 2, 1), valid_side(224, 2, 1), 32)",
                  "shape_stride1_valid = tuple(layers.Conv2D(32, (2, 2)).compute_output_shape((None, 224, 224, 3))[1:])"),
             Edit("a_output_shapes", "shape_stride2_same = (same_side(224, 2), same_side(224, 2), 32)",
                  "shape_stride2_same = tuple(layers.Conv2D(32, (2, 2), strides=2, padding='same')"
                  ".compute_output_shape((None, 224, 224, 3))[1:])"),
             Edit("a_kernel_shape", "conv1_kernel_shape = tuple(int(d) for d in conv1.kernel.shape)",
                  "conv1_kernel_shape = conv1.get_weights()[0].shape"),
             Edit("a_frozen_counts", "frozen_non_trainable_params = conv1_params + conv2_params\n"
                  "frozen_trainable_params = cnn_model.count_params() - frozen_non_trainable_params",
                  "frozen_trainable_params = int(sum(np.prod(w.shape) for w in cnn_model.trainable_weights))\n"
                  "frozen_non_trainable_params = int(sum(np.prod(w.shape) for w in cnn_model.non_trainable_weights))"),
             Edit("a_backbone", "embedding_shape = tuple(int(d) for d in backbone.output_shape[1:])",
                  "embedding_shape = backbone.output.shape[1:]"),
             Edit("a_model_choice", CHOICE, 'chosen_model = "tl" if tl_val >= ft_val else "ft"'))),
    Variant("freeze_tail_by_name", "the fine-tuned layers picked by name (conv5_block3_*), every "
            "other layer frozen", (Edit("a_finetune_model", FREEZE,
                                        'for layer in backbone.layers:\n    layer.trainable = '
                                        'layer.name.startswith("conv5_block3_")'),)),
    Variant("conv_params_weights_plus_biases", "the conv counts written as weights plus biases",
            (Edit("a_conv_params", "conv1_params = (2 * 2 * 3 + 1) * 32", "conv1_params = 2 * 2 * 3 * 32 + 32"),
             Edit("a_conv_params", "conv2_params = (2 * 2 * 32 + 1) * 32", "conv2_params = 2 * 2 * 32 * 32 + 32"))),
    Variant("kernel_shape_from_weights", "the kernel shape read from get_weights() and the frozen "
            "counts from the layers' own count_params()",
            (Edit("a_kernel_shape", "conv1_kernel_shape = tuple(int(d) for d in conv1.kernel.shape)",
                  "conv1_kernel_shape = conv1.get_weights()[0].shape"),
             Edit("a_frozen_counts", "frozen_non_trainable_params = conv1_params + conv2_params",
                  'frozen_non_trainable_params = sum(cnn_model.get_layer(n).count_params() for n in ("conv1", "conv2"))'))),
    Variant("off_by_bias", "conv parameters without the biases",
            (Edit("a_conv_params", "(2 * 2 * 3 + 1) * 32", "2 * 2 * 3 * 32"),
             Edit("a_conv_params", "(2 * 2 * 32 + 1) * 32", "2 * 2 * 32 * 32")),
            fails=F({"q1_conv_params", "q3_frozen_counts"})),
    Variant("valid_without_plus_one", "'valid' output side without the + 1",
            (Edit("a_output_shapes", "return (n - k) // s + 1", "return (n - k) // s"),),
            fails=F({"q1_output_shapes"})),
    Variant("output_depth_from_input", "the stride-1 output's depth taken from the input's 3 channels "
            "(a convolution's output depth is its number of filters, 32)",
            (Edit("a_output_shapes", "shape_stride1_valid = (valid_side(224, 2, 1), valid_side(224, 2, 1), 32)",
                  "shape_stride1_valid = (valid_side(224, 2, 1), valid_side(224, 2, 1), 3)"),),
            fails=F({"q1_output_shapes"})),
    Variant("frozen_counts_swapped", "the frozen CNN's counts swapped: the Conv2D weights called "
            "trainable, everything else non-trainable",
            (Edit("a_frozen_counts", "frozen_non_trainable_params = conv1_params + conv2_params\n"
                  "frozen_trainable_params = cnn_model.count_params() - frozen_non_trainable_params",
                  "frozen_trainable_params = conv1_params + conv2_params\n"
                  "frozen_non_trainable_params = cnn_model.count_params() - frozen_trainable_params"),),
            fails=F({"q3_frozen_counts"})),
    Variant("cnn_one_pooling", "the CNN without its second MaxPooling2D (Flatten straight after conv2)",
            (Edit("a_cnn_architecture", "x = layers.MaxPooling2D()(x)\nx = layers.Flatten()(x)",
                  "x = layers.Flatten()(x)"),),
            fails=F({"q2_cnn_architecture"})),
    Variant("counts_as_floats", "a parameter count as a float (the notebook asks for ints); the "
            "frozen counts computed from it are floats too",
            (Edit("a_conv_params", "conv1_params = (2 * 2 * 3 + 1) * 32", "conv1_params = float((2 * 2 * 3 + 1) * 32)"),),
            fails=F({"q1_conv_params", "q3_frozen_counts"})),
    Variant("cnn_without_rescaling", "no Rescaling(1/255) in the CNN",
            (Edit("a_cnn_architecture", "x = layers.Rescaling(1 / 255)(inputs)\nx = layers.Conv2D(32, (2, 2), activation=\"relu\", name=\"conv1\")(x)",
                  "x = layers.Conv2D(32, (2, 2), activation=\"relu\", name=\"conv1\")(inputs)"),),
            fails=F({"q2_cnn_architecture"})),
    Variant("cnn_softmax_head", "the CNN ends in two softmax units (sparse cross-entropy)",
            (Edit("a_cnn_architecture", 'outputs = layers.Dense(1, activation="sigmoid")(x)',
                  'outputs = layers.Dense(2, activation="softmax")(x)'),
             Edit("a_cnn_compile", 'loss="binary_crossentropy"', 'loss="sparse_categorical_crossentropy"')),
            fails=F({"q2_cnn_architecture", "q2_cnn_compile", "q2_cnn_accuracy"})),
    Variant("cnn_hidden_tanh_layer", "the CNN's hidden activation tanh, written as a layer of its own",
            (Edit("a_cnn_architecture", 'x = layers.Dense(64, activation="relu")(x)',
                  'x = layers.Dense(64)(x)\nx = layers.Activation("tanh")(x)'),),
            fails=F({"q2_cnn_architecture"})),
    Variant("conv2_params_without_depth", "conv2's count without the 32 input channels",
            (Edit("a_conv_params", "conv2_params = (2 * 2 * 32 + 1) * 32", "conv2_params = (2 * 2 + 1) * 32"),),
            fails=F({"q1_conv_params", "q3_frozen_counts"})),
    Variant("cnn_sgd", "SGD instead of Adam",
            (Edit("a_cnn_compile", "optimizer=keras.optimizers.Adam()", "optimizer=keras.optimizers.SGD()"),),
            fails=F({"q2_cnn_compile"})),
    Variant("train_on_validation", "the CNN trained on train + validation",
            (Edit("a_cnn_fit", FIT_CNN,
                  "cnn_history = cnn_model.fit(training_batches(np.concatenate([x_train, x_val]), "
                  "np.concatenate([y_train, y_val])), validation_data=(x_val, y_val), "
                  "epochs=S.cnn_epochs, verbose=2)"),),
            fails=F({"q2_cnn_trained"})),
    Variant("zero_epochs", "fit with epochs=0",
            (Edit("a_cnn_fit", "epochs=S.cnn_epochs", "epochs=0"),),
            fails=F({"q2_cnn_trained"}), fails_if_assessable=F({"q2_cnn_accuracy"})),
    Variant("plain_dict_history", "no training at all, a dict of plausible numbers as the history",
            (Edit("a_cnn_fit", FIT_CNN,
                  'cnn_history = {k: [0.6] * S.cnn_epochs for k in ("loss", "accuracy", "val_loss", "val_accuracy")}'),),
            fails=F({"q2_cnn_trained"}), fails_if_assessable=F({"q2_cnn_accuracy"})),
    Variant("fit_twice", "the fit cell run twice (the model trains for twice the epochs)",
            (Insert("a_cnn_fit", copy_of=("a_cnn_fit",)),),
            fails=F({"q2_cnn_trained"})),
    Variant("constant_cnn", "a CNN whose last layer ignores its input (zero kernel), set after "
            "its fit (so its history no longer describes it)",
            (Insert("a_cnn_fit", "_w, _b = cnn_model.layers[-1].get_weights()\n"
                                 "cnn_model.layers[-1].set_weights([np.zeros_like(_w), _b])"),),
            fails=F({"q2_cnn_accuracy", "q2_cnn_trained"})),
    Variant("forged_training_evidence", "no training: the optimizer's step counter set by hand "
            "to what the fit would take, and a history typed in with the right epochs",
            (Edit("a_cnn_fit", FIT_CNN,
                  "cnn_model.optimizer.build(cnn_model.trainable_variables)\n"
                  "cnn_model.optimizer.iterations.assign(S.cnn_epochs * len(train_ds))\n"
                  'cnn_history = {"loss": [0.6] * S.cnn_epochs, "accuracy": [0.7] * S.cnn_epochs, '
                  '"val_loss": [0.6] * S.cnn_epochs, "val_accuracy": [0.72] * S.cnn_epochs}'),),
            fails=F({"q2_cnn_trained"}), fails_if_assessable=F({"q2_cnn_accuracy"})),
    Variant("kernel_shape_typed", "the kernel shape typed in the wrong order",
            (Edit("a_kernel_shape", "conv1_kernel_shape = tuple(int(d) for d in conv1.kernel.shape)",
                  "conv1_kernel_shape = (32, 3, 2, 2)"),),
            fails=F({"q3_kernel_shape"})),
    Variant("cnn_left_frozen", "the Conv2D layers left frozen after counting",
            (Edit("a_frozen_counts", UNFREEZE, "pass"),),
            fails=F({"q3_frozen_counts"})),
    Variant("backbone_layers_off_by_one", "the input layer not counted",
            (Edit("a_backbone", "backbone_layers = len(backbone.layers)", "backbone_layers = len(backbone.layers) - 1"),),
            fails=F({"q4_backbone_facts"})),
    Variant("tl_head_128", "the head's Dense has 128 units (the notebook prescribes 256)",
            (Edit("a_head_architecture", 'x = layers.Dense(256, activation="relu")(x)', 'x = layers.Dense(128, activation="relu")(x)'),),
            fails=F({"q4_head_architecture"})),
    Variant("tl_softmax_head", "the head ends in two softmax units",
            (Edit("a_head_architecture", 'tl_out = layers.Dense(1, activation="sigmoid")(x)', 'tl_out = layers.Dense(2, activation="softmax")(x)'),
             Edit("a_head_architecture", 'tl_model.compile(loss="binary_crossentropy"', 'tl_model.compile(loss="sparse_categorical_crossentropy"')),
            fails=F({"q4_head_architecture", "q4_head_accuracy", "q5_model_choice"})),
    Variant("backbone_params_trainable_only", "the backbone's parameters counted from its "
            "trainable weights (batch norm's moving statistics left out)",
            (Edit("a_backbone", "backbone_params = backbone.count_params()",
                  "backbone_params = int(sum(np.prod(w.shape) for w in backbone.trainable_weights))"),),
            fails=F({"q4_backbone_facts"})),
    Variant("tl_head_without_dropout", "the head without its Dropout(0.5)",
            (Edit("a_head_architecture", "x = layers.Dropout(0.5)(x)\ntl_out", "tl_out"),),
            fails=F({"q4_head_architecture"})),
    Variant("ft_backbone_all_frozen", "the backbone frozen whole before fine-tuning (only the head trains)",
            (Edit("a_finetune_model", "backbone.trainable = True", "backbone.trainable = False"),),
            fails=F({"q5_finetune_frozen"})),
    Variant("heads_dropout_low", "both heads' Dropout drops 0.1 of its inputs (the notebook prescribes "
            "0.5 in 4b, and the same layers in 5a's head)",
            (Edit("a_head_architecture", "layers.Dropout(0.5)", "layers.Dropout(0.1)"),
             Edit("a_finetune_model", "layers.Dropout(0.5)", "layers.Dropout(0.1)")),
            fails=F({"q4_head_architecture", "q5_finetune_frozen"})),
    Variant("ft_tail_on_train_and_val", "the tail fine-tuned on the training and validation features",
            (Edit("a_finetune_fit", "tail_model.fit(mid_train, y_train,",
                  "tail_model.fit(np.concatenate([mid_train, mid_val]), np.concatenate([y_train, y_val]),"),),
            fails=F({"q5_finetune_accuracy"})),
    Variant("tl_head_sgd", "the head compiled with SGD (4b asks to compile it as in Part 2: Adam)",
            (Edit("a_head_architecture", "tl_model.compile(loss=\"binary_crossentropy\", optimizer=keras.optimizers.Adam(),",
                  "tl_model.compile(loss=\"binary_crossentropy\", optimizer=\"sgd\","),),
            fails=F({"q4_head_architecture"})),
    Variant("tl_head_tanh", "the head's hidden Dense with tanh (the notebook prescribes relu)",
            (Edit("a_head_architecture", 'x = layers.Dense(256, activation="relu")(x)',
                  'x = layers.Dense(256, activation="tanh")(x)'),),
            fails=F({"q4_head_architecture"})),
    Variant("tl_head_relu6_layer", "the head's relu capped at 6, written as a layer of its own",
            (Edit("a_head_architecture", 'x = layers.Dense(256, activation="relu")(x)',
                  "x = layers.Dense(256)(x)\nx = layers.ReLU(max_value=6.0)(x)"),),
            fails=F({"q4_head_architecture"})),
    Variant("nothing_frozen", "the whole backbone left trainable",
            (Edit("a_finetune_model", FREEZE, "pass"),),
            fails=F({"q5_finetune_frozen"})),
    Variant("eleven_open", "11 backbone layers left trainable",
            (Edit("a_finetune_model", "backbone.layers[:-10]", "backbone.layers[:-11]"),),
            fails=F({"q5_finetune_frozen"})),
    Variant("nine_open", "9 backbone layers left trainable",
            (Edit("a_finetune_model", "backbone.layers[:-10]", "backbone.layers[:-9]"),),
            fails=F({"q5_finetune_frozen"})),
    Variant("frozen_changed_renamed", "a frozen backbone layer's weights changed, then the layer renamed",
            (Insert("a_finetune_model", "_l = backbone.layers[2]\n_l.set_weights([w * 1.5 for w in _l.get_weights()])\n"
                                        "_l.name = 'renamed_conv'"),),
            fails=F({"q5_finetune_frozen", "q5_finetune_accuracy"})),
    Variant("ft_without_preprocess", "images fed to the backbone without preprocess_input",
            (Edit("a_finetune_model", "x = backbone(preprocess_input(image_in))", "x = backbone(image_in)"),),
            fails=F({"q5_finetune_accuracy"})),
    Variant("ft_rescale_255", "images divided by 255 instead of preprocess_input",
            (Edit("a_finetune_model", "x = backbone(preprocess_input(image_in))", "x = backbone(layers.Rescaling(1 / 255)(image_in))"),),
            fails=F({"q5_finetune_accuracy"})),
    Variant("choice_ties_to_ft", "a tie goes to the fine-tuned model (the notebook keeps tl)",
            (Edit("a_model_choice", CHOICE, 'chosen_model = "ft" if ft_val >= tl_val else "tl"'),),
            fails=F({"q5_model_choice"})),
    # Choosing on test is judged by its value: the grader recomputes the rule on validation. At the
    # grading seed the test set happens to pick the same model, so this answer is right and keeps
    # its point; a choice on test that disagrees with the rule fails like choice_typed_in.
    Variant("choice_on_test_agrees", "the choice made on the test set, agreeing with the rule here",
            (Edit("a_model_choice", CHOICE,
                  "tl_test = tl_model.evaluate(emb_test, y_test, verbose=0)[1]\n"
                  "ft_test = tail_model.evaluate(mid_test, y_test, verbose=0)[1]\n"
                  'chosen_model = "ft" if ft_test > tl_test else "tl"'),)),
    Variant("choice_typed_in", "the choice typed in",
            (Edit("a_model_choice", CHOICE, 'chosen_model = "ft"'),),
            fails=F({"q5_model_choice"})),
]


# Valid variants graded together (their names, in the order their changes apply). Kept alone:
# the reference. choice_on_test_agrees is right only for the training the grading seed gives
# the unchanged notebook (a re-run or another construction draws anew), so it shares a notebook
# only with changes that leave every training as it is.
VALID_GROUPS: dict[str, tuple[str, ...]] = {
    "valid_sequential_flags_rerun_keras_answers": ("cnn_sequential", "freeze_backbone_by_flags",
                                                   "rerun_cnn_cells", "answers_read_from_keras"),
    "valid_dropout_loop_extra_cells_sequential": ("cnn_wider_dropout", "freeze_cnn_by_loop", "extra_cells",
                                                  "sequential_heads"),
    "valid_names_numpy_ints": ("other_names_and_spellings", "numpy_ints"),
    "valid_activation_layers_training_false": ("activations_as_layers", "backbone_training_false"),
    # Changes that leave every model's training draw for draw as the reference's, beside the
    # choice made on test (right only for the training the unchanged notebook gets).
    "valid_choice_on_test_by_name_weights": ("choice_on_test_agrees", "freeze_tail_by_name",
                                             "conv_params_weights_plus_biases", "kernel_shape_from_weights"),
}

# Mistakes graded two to a notebook (:func:`paired`): one of questions 1-3, one of questions
# 4-5. The rest are graded alone.
MISTAKE_PAIRS: dict[str, tuple[str, str]] = {
    "pair_off_by_bias_nothing_frozen": ("off_by_bias", "nothing_frozen"),
    "pair_without_plus_one_eleven_open": ("valid_without_plus_one", "eleven_open"),
    "pair_counts_as_floats_nine_open": ("counts_as_floats", "nine_open"),
    "pair_cnn_without_rescaling_frozen_changed": ("cnn_without_rescaling", "frozen_changed_renamed"),
    "pair_cnn_softmax_ft_without_preprocess": ("cnn_softmax_head", "ft_without_preprocess"),
    "pair_cnn_sgd_ft_rescale_255": ("cnn_sgd", "ft_rescale_255"),
    "pair_train_on_validation_ties_to_ft": ("train_on_validation", "choice_ties_to_ft"),
    "pair_zero_epochs_choice_typed_in": ("zero_epochs", "choice_typed_in"),
    "pair_plain_dict_backbone_off_by_one": ("plain_dict_history", "backbone_layers_off_by_one"),
    "pair_fit_twice_tl_head_128": ("fit_twice", "tl_head_128"),
    "pair_constant_cnn_tl_softmax": ("constant_cnn", "tl_softmax_head"),
    "pair_forged_evidence_trainable_only": ("forged_training_evidence", "backbone_params_trainable_only"),
    "pair_kernel_typed_without_dropout": ("kernel_shape_typed", "tl_head_without_dropout"),
    "pair_cnn_left_frozen_all_frozen": ("cnn_left_frozen", "ft_backbone_all_frozen"),
    "pair_tanh_layer_tl_head_tanh": ("cnn_hidden_tanh_layer", "tl_head_tanh"),
    "pair_conv2_without_depth_relu6": ("conv2_params_without_depth", "tl_head_relu6_layer"),
    "pair_input_depth_dropout_low": ("output_depth_from_input", "heads_dropout_low"),
    "pair_counts_swapped_tail_on_val": ("frozen_counts_swapped", "ft_tail_on_train_and_val"),
    "pair_one_pooling_tl_head_sgd": ("cnn_one_pooling", "tl_head_sgd"),
}

_BY_NAME = {v.name: v for v in VARIANTS}
_GROUPED = {name for names in VALID_GROUPS.values() for name in names}
_PAIRED = {name for names in MISTAKE_PAIRS.values() for name in names}
GRADED: list[Variant] = [
    *(v for v in VARIANTS if v.name not in _GROUPED | _PAIRED),
    *(combined(group, tuple(_BY_NAME[n] for n in names)) for group, names in VALID_GROUPS.items()),
    *(paired(pair, _BY_NAME[early], _BY_NAME[late]) for pair, (early, late) in MISTAKE_PAIRS.items()),
]

GRADED_AS: dict[str, str] = {
    **{v.name: v.name for v in VARIANTS},
    **{n: group for group, names in VALID_GROUPS.items() for n in names},
    **{n: pair for pair, names in MISTAKE_PAIRS.items() for n in names},
}
"""The graded notebook that holds each variant."""
