"""The reference notebook's compute, in plain Keras 3, on whichever backend KERAS_BACKEND names.

Why it exists: the device machine lent for GPU checks has PyTorch and JAX but no TensorFlow,
reaches no package registry, and takes at most 64 MiB of carried files a call, while
TensorFlow's GPU stack is about 2.8 GB of wheels. The notebook itself needs TensorFlow (its
data part uses ``image_dataset_from_directory`` and ``tf.data``), so it cannot run there.
This script does what the solution cells do, in the same order, with the same models,
epochs, batch size and seed from ``settings.json``, but decodes the images with Pillow and
feeds NumPy arrays. Its times are a lead on what the notebook's compute costs on a GPU, not
the notebook's runtime: the backend differs, and so does the input pipeline.

ResNet50 starts from random weights (``weights=None``): the same arithmetic as ImageNet or
stand-in weights, and no file to carry.

    KERAS_BACKEND=torch python bench/gpu_keras_port.py --data DIR [--profile full] [--json OUT]

Prints one JSON object: backend, device, seconds per part, and the validation accuracies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

SETTINGS = Path(__file__).resolve().parents[1] / "source" / "cnn_transfer" / "settings.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="the built dataset: train/, validation/, test/ of class folders")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--settings", type=Path, default=SETTINGS)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)

    settings = json.loads(args.settings.read_text())
    prof = settings["profiles"][args.profile]
    size, batch, seed = prof["image_size_px"], settings["batch_size"], settings["seed"]
    classes = settings["classes"]
    parts: dict[str, float] = {}

    t = time.perf_counter()
    import keras  # noqa: PLC0415 (timed: the import is part of the notebook's setup)
    import numpy as np  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415
    from keras.applications.resnet50 import preprocess_input  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    keras.utils.set_random_seed(seed)
    parts["setup"] = time.perf_counter() - t

    t = time.perf_counter()

    def load_split(split: str):
        images, labels = [], []
        for label, name in enumerate(classes):
            for path in sorted((args.data / split / name).glob("*.jpg")):
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if im.size != (size, size):
                        im = im.resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(im, dtype="float32"))
                labels.append(label)
        return np.stack(images), np.asarray(labels, dtype="float32")[:, None]

    x_train, y_train = load_split("train")
    x_val, y_val = load_split("validation")
    x_test, y_test = load_split("test")
    parts["part0-data"] = time.perf_counter() - t

    t = time.perf_counter()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(size, size, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(32, (2, 2), activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, (2, 2), activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    cnn_model = keras.Model(inputs, outputs, name="cnn")
    cnn_model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(),
                      metrics=["accuracy"])
    cnn_history = cnn_model.fit(x_train, y_train, batch_size=batch, shuffle=True,
                                validation_data=(x_val, y_val), epochs=prof["cnn_epochs"],
                                verbose=0)
    parts["part2-cnn"] = time.perf_counter() - t

    t = time.perf_counter()
    backbone = keras.applications.ResNet50(include_top=False, weights=None,
                                           input_shape=(size, size, 3))
    embedding_shape = tuple(int(d) for d in backbone.output.shape[1:])
    extractor = keras.Model(backbone.input,
                            [backbone.get_layer("conv5_block2_out").output, backbone.output])

    def extract(images):
        return extractor.predict(preprocess_input(images.copy()), batch_size=batch, verbose=0)

    mid_train, emb_train = extract(x_train)
    mid_val, emb_val = extract(x_val)
    mid_test, emb_test = extract(x_test)
    parts["part4-extract"] = time.perf_counter() - t

    t = time.perf_counter()
    keras.utils.set_random_seed(seed)
    emb_in = keras.Input(shape=embedding_shape)
    x = layers.Flatten()(emb_in)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    tl_model = keras.Model(emb_in, layers.Dense(1, activation="sigmoid")(x), name="tl_head")
    tl_model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(),
                     metrics=["accuracy"])
    tl_history = tl_model.fit(emb_train, y_train, batch_size=batch, epochs=prof["head_epochs"],
                              validation_data=(emb_val, y_val), verbose=0)
    parts["part4-head"] = time.perf_counter() - t

    t = time.perf_counter()
    keras.utils.set_random_seed(seed)
    backbone.trainable = True
    for layer in backbone.layers[:-10]:
        layer.trainable = False
    ft_head = [layers.Flatten(), layers.Dense(256, activation="relu"), layers.Dropout(0.5),
               layers.Dense(1, activation="sigmoid")]
    image_in = keras.Input(shape=(size, size, 3))
    x = backbone(preprocess_input(image_in))
    for layer in ft_head:
        x = layer(x)
    ft_model = keras.Model(image_in, x, name="fine_tuned")

    def last_block(x):
        shortcut = x
        for suffix in ("1_conv", "1_bn", "1_relu", "2_conv", "2_bn", "2_relu", "3_conv", "3_bn"):
            x = backbone.get_layer("conv5_block3_" + suffix)(x)
        x = backbone.get_layer("conv5_block3_add")([shortcut, x])
        return backbone.get_layer("conv5_block3_out")(x)

    mid_in = keras.Input(shape=mid_train.shape[1:])
    x = last_block(mid_in)
    for layer in ft_head:
        x = layer(x)
    tail_model = keras.Model(mid_in, x, name="fine_tune_tail")
    tail_model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(1e-4),
                       metrics=["accuracy"])
    ft_history = tail_model.fit(mid_train, y_train, batch_size=batch,
                                epochs=prof["finetune_epochs"],
                                validation_data=(mid_val, y_val), verbose=0)
    n = min(16, len(x_val))
    p_full = ft_model.predict(x_val[:n], verbose=0)
    p_tail = tail_model.predict(mid_val[:n], verbose=0)
    max_diff = float(np.max(np.abs(p_full - p_tail)))
    chosen = "ft" if ft_history.history["val_accuracy"][-1] > tl_history.history["val_accuracy"][-1] else "tl"
    if chosen == "tl":
        tl_model.evaluate(emb_test, y_test, verbose=0)
    else:
        tail_model.evaluate(mid_test, y_test, verbose=0)
    parts["part5-finetune"] = time.perf_counter() - t

    result = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "device": _device(keras.backend.backend()),
        "profile": args.profile,
        "images": {"train": len(x_train), "validation": len(x_val), "test": len(x_test)},
        "parts_s": {k: round(v, 2) for k, v in parts.items()},
        "compute_s": round(sum(parts.values()), 2),
        "process_s": round(time.perf_counter() - T_START, 2),
        "val_accuracy": {"cnn": cnn_history.history["val_accuracy"][-1],
                         "tl": tl_history.history["val_accuracy"][-1],
                         "ft": ft_history.history["val_accuracy"][-1]},
        "ft_tail_max_diff": max_diff,
    }
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def _device(backend: str) -> str:
    try:
        if backend == "torch":
            import torch  # noqa: PLC0415
            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        if backend == "jax":
            import jax  # noqa: PLC0415
            return str(jax.devices()[0])
        import tensorflow as tf  # noqa: PLC0415
        gpus = tf.config.list_physical_devices("GPU")
        return gpus[0].name if gpus else "cpu"
    except Exception as exc:  # noqa: BLE001 (a label only)
        return f"unknown ({exc})"


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    sys.exit(main())
