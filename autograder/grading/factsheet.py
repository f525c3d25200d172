"""Facts about one executed notebook, measured in the trusted process (``python -m``).

``course calibrate`` runs the reference solution, then this module turns its
exported evidence into plain facts: answer values, each model's layers, parameter
counts and compile settings, and accuracies on the hidden grading split. The
answer key is built from several such fact sheets (see ``calibrate.py``); the
rubric compares submissions against it, so no expected value is typed in by hand.
"""

from __future__ import annotations

import json
from typing import Any

from autograder.grading.evidence import (
    CheckInputs,
    Evidence,
    Missing,
    RubricFail,
    accuracy,
    compile_facts,
    finetune_tail,
    find_backbone,
    layer_rows,
    load_image_folder,
    model_outputs,
    optimizer_iterations,
    trainable_pattern,
    weight_counts,
)

def measure(inputs: CheckInputs, *, answer_names: list[str], model_names: list[str],
            accuracy_inputs: dict[str, str], backbone: bool) -> dict[str, Any]:
    """The fact sheet of one run. ``accuracy_inputs`` (``Assignment.accuracy_inputs``): which
    models are measured on the hidden split, fed ``"images"`` or ``"embeddings"``; with none,
    no image is read. ``backbone`` (``Assignment.uses_backbone``): the trusted ResNet50's
    embeddings are read, and a model with a nested backbone is compared with its tail."""
    ev = Evidence(inputs.facts_dir)
    sheet: dict[str, Any] = {"answers": {}, "models": {}, "accuracy": {}, "validation_accuracy": {},
                             "missing": []}
    for name in answer_names:
        try:
            sheet["answers"][name] = ev.answer(name)
        except Missing:
            sheet["missing"].append(name)
    grading = validation = embedded = None
    if accuracy_inputs or backbone:
        grading = load_image_folder(inputs.grading_dir, classes=inputs.classes,
                                    image_size_px=inputs.image_size_px)
        validation = load_image_folder(inputs.validation_dir, classes=inputs.classes,
                                       image_size_px=inputs.image_size_px)
    if backbone:
        embedded = _embedded(inputs, grading[0], validation[0])
    for name in model_names:
        try:
            model = ev.model(name)
        except (Missing, RubricFail):
            sheet["missing"].append(name)
            continue
        sheet["models"][name] = _model_facts(ev, name, model, sheet, grading, validation, embedded)
        fed = accuracy_inputs.get(name)
        if fed == "embeddings":
            sheet["accuracy"][name] = accuracy(model, embedded["grading"], grading[1])
            sheet["validation_accuracy"][name] = accuracy(model, embedded["validation"], validation[1])
        elif fed == "images":
            sheet["accuracy"][name] = accuracy(model, grading[0], grading[1])
            sheet["validation_accuracy"][name] = accuracy(model, validation[0], validation[1])
    if grading is not None:
        sheet["grading_majority_rate"] = float(max(grading[1].mean(), 1 - grading[1].mean()))
        sheet["grading_size"] = int(len(grading[1]))
    return sheet


def _embedded(inputs: CheckInputs, grading_images: Any, validation_images: Any) -> dict[str, Any]:
    """The trusted embeddings (and activations before the last block) of both hidden splits:
    from the batch's cache when there is one, else computed here."""
    import numpy as np

    from autograder.grading.embeddings import FILES as EMBEDDING_FILES
    from autograder.grading.trusted import build_backbone, embed_both

    if inputs.embeddings_dir is not None:
        return {name: np.load(inputs.embeddings_dir / EMBEDDING_FILES[name], allow_pickle=False)
                for name in ("grading", "validation", "grading_mid", "validation_mid")}
    backbone = build_backbone(inputs.weights_file, image_size_px=inputs.image_size_px)
    embedded = {}
    for split, images in (("grading", grading_images), ("validation", validation_images)):
        embedded[f"{split}_mid"], embedded[split] = embed_both(backbone, images)
    return embedded


def _model_facts(ev: Evidence, name: str, model: Any, sheet: dict[str, Any], grading: Any,
                 validation: Any, embedded: dict[str, Any] | None) -> dict[str, Any]:
    """Structure, counts, compile settings and optimizer steps of one model; for a model with a
    nested backbone (when the assignment uses the trusted one: ``embedded``), also how far it
    agrees with the trusted pipeline (``tail_max_diff``)."""
    import numpy as np

    facts: dict[str, Any] = {
        "layers": layer_rows(model),
        "counts": weight_counts(model),
        "compile": compile_facts(ev.model_file(name)),
    }
    facts["optimizer_iterations"] = optimizer_iterations(ev.model_file(name))
    nested = find_backbone(model) if embedded is not None else None
    if nested is not None:
        facts["backbone_trainable"] = trainable_pattern(nested)
        # The fine-tuned model against the trusted pipeline: its own last block and head
        # on trusted activations must give what it gives on the images.
        tail = finetune_tail(model, open_layers=sum(facts["backbone_trainable"]))
        p_full = model_outputs(model, grading[0])
        p_tail = model_outputs(tail, embedded["grading_mid"])
        facts["tail_max_diff"] = float(np.max(np.abs(p_full - p_tail)))
        sheet["validation_accuracy_via_tail"] = accuracy(tail, embedded["validation_mid"],
                                                         validation[1])
    return facts


def main() -> None:
    import os

    inputs = CheckInputs.from_env()
    names = json.loads(os.environ["COURSE_FACTSHEET_NAMES"])
    sheet = measure(inputs, answer_names=names["answers"], model_names=names["models"],
                    accuracy_inputs=names["accuracy_inputs"], backbone=names["backbone"])
    tmp = inputs.report_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(sheet, indent=1, sort_keys=True))
    tmp.replace(inputs.report_file)


if __name__ == "__main__":
    main()
