"""The grader's own ResNet50 and embeddings, built in the trusted checking process.

The transfer-learning head (``tl_model``) takes embeddings, not images, so the
checker embeds the hidden split with its own backbone: the verified weights file
(or the stand-in file, which students used too) and Keras' ``preprocess_input``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_backbone(weights_file: Path | None, *, image_size_px: int) -> Any:
    import keras

    if weights_file is None:
        raise RuntimeError("no ResNet50 weights file was given to the checker")
    return keras.applications.ResNet50(
        include_top=False, weights=str(weights_file),
        input_shape=(image_size_px, image_size_px, 3),
    )


def embed(backbone: Any, images: Any) -> Any:
    import keras

    x = keras.applications.resnet50.preprocess_input(images.copy())
    return backbone.predict(x, batch_size=32, verbose=0)


EMBEDDING_FILES = {"grading": "grading.npy", "validation": "validation.npy"}
PRETRAINED_FILE = "backbone_weights.npz"
"""Every layer's pretrained weights, as ``"<layer>:<i>"`` arrays: checks compare frozen layers
against it without building ResNet50 again in each checker run."""


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
        np.save(out / EMBEDDING_FILES[split], embed(backbone, images))
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
