"""The grader's own ResNet50 and embeddings, built in the trusted checking process.

The transfer-learning head (``tl_model``) takes embeddings, not images, so the
checker embeds the hidden split with its own backbone: the verified weights file
(or the stand-in file, which students used too) and Keras' ``preprocess_input``.
The same single pass also keeps the activations before ResNet50's last residual
block (``conv5_block2_out``), so the fine-tuned model can be checked against the
trusted pipeline, and a per-layer signature of the pretrained backbone, so frozen
layers are compared by position and weights rather than by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autograder.grading.embeddings import FILES as EMBEDDING_FILES, PRETRAINED_FILE
from autograder.keras_import import import_keras

# The layer whose output feeds the last residual block (the fine-tuned tail's input).
BEFORE_LAST_BLOCK = "conv5_block2_out"


def build_backbone(weights_file: Path | None, *, image_size_px: int) -> Any:
    keras = import_keras()

    if weights_file is None:
        raise RuntimeError("no ResNet50 weights file was given to the checker")
    return keras.applications.ResNet50(
        include_top=False, weights=str(weights_file),
        input_shape=(image_size_px, image_size_px, 3),
    )


def embed(backbone: Any, images: Any) -> Any:
    return embed_both(backbone, images)[1]


def embed_both(backbone: Any, images: Any) -> tuple[Any, Any]:
    """(activations before the last block, embeddings) of ``images``, preprocessed exactly as
    ResNet50 was trained (``resnet50.preprocess_input``), in inference mode."""
    keras = import_keras()

    extractor = keras.Model(backbone.input,
                            [backbone.get_layer(BEFORE_LAST_BLOCK).output, backbone.output])
    x = keras.applications.resnet50.preprocess_input(images.copy())
    mid, emb = extractor.predict(x, batch_size=32, verbose=0)
    return mid, emb




def backbone_layers(backbone: Any) -> list[dict[str, Any]]:
    from autograder.grading.evidence import layer_signature

    return [layer_signature(layer) for layer in backbone.layers]


def main() -> None:
    """``python -m autograder.grading.trusted``: embed both hidden splits into the report folder."""
    import numpy as np

    from autograder.grading.evidence import CheckInputs, load_image_folder

    inputs = CheckInputs.from_env()
    backbone = build_backbone(inputs.weights_file, image_size_px=inputs.image_size_px)
    out = inputs.report_file.parent
    for split, folder in (("grading", inputs.grading_dir), ("validation", inputs.validation_dir)):
        images, _ = load_image_folder(folder, classes=inputs.classes,
                                      image_size_px=inputs.image_size_px)
        mid, emb = embed_both(backbone, images)
        np.save(out / EMBEDDING_FILES[split], emb)
        np.save(out / EMBEDDING_FILES[f"{split}_mid"], mid)
    (out / EMBEDDING_FILES["backbone_layers"]).write_text(json.dumps(backbone_layers(backbone)))
    np.savez(out / PRETRAINED_FILE, **{f"{layer.name}:{i}": w for layer in backbone.layers
                                       for i, w in enumerate(layer.get_weights())})
    inputs.report_file.write_text("{}")


def pretrained_weights(cache_dir: Path) -> dict[str, list]:
    """Layer name -> pretrained weight arrays, from the cache written by :func:`main`."""
    import numpy as np

    layers: dict[str, list] = {}
    with np.load(cache_dir / PRETRAINED_FILE, allow_pickle=False) as data:
        for key in sorted(data.files, key=lambda k: (k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1]))):
            layers.setdefault(key.rsplit(":", 1)[0], []).append(data[key])
    return layers


if __name__ == "__main__":
    main()
