"""Train the recitation's from-scratch CNN on the generated set to calibrate ``difficulty``.

Builds the dataset at one difficulty into a temporary course root (the repo's
``datasets/`` is not touched), then trains the seed CNN once per seed and
prints validation accuracy after epoch 1 and after the last epoch. The
numbers go into ``datasets/README.md``. This is a measurement, not a test:
it takes about 20-40 s per seed on two CPU cores.

    .venv/bin/python bench/calibrate_dataset.py --difficulty 0.1 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autograder.course.config import Course, load_course  # noqa: E402
from autograder.course.datasets import build_dataset, student_splits_dir  # noqa: E402

_REPO = Path(__file__).resolve().parent.parent


def train_once(data_dir: Path, *, seed: int, epochs: int, dense_units: int) -> list[float]:
    """Validation accuracy after each epoch for one seeded run of the recitation's CNN."""
    import keras

    keras.utils.set_random_seed(seed)
    keras.backend.clear_session()
    load = dict(image_size=(224, 224), batch_size=32, seed=seed, verbose=False)
    train = keras.utils.image_dataset_from_directory(data_dir / "train", **load)
    validation = keras.utils.image_dataset_from_directory(data_dir / "validation", **load)
    inputs = keras.Input(shape=(224, 224, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(32, (2, 2), activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, (2, 2), activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(train, validation_data=validation, epochs=epochs, verbose=0)
    return [float(v) for v in history.history["val_accuracy"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulty", type=float, default=None,
                        help="default: dataset.difficulty from course_config.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dense-units", type=int, default=64)
    args = parser.parse_args()

    base = load_course(_REPO)
    difficulty = base.config.dataset.difficulty if args.difficulty is None else args.difficulty
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        dataset = dataclasses.replace(base.config.dataset, difficulty=difficulty)
        course = Course(root=Path(tmp), config=dataclasses.replace(base.config, dataset=dataset))
        build_dataset(course)
        rows = []
        for seed in args.seeds:
            started = time.perf_counter()
            accuracies = train_once(student_splits_dir(course), seed=seed, epochs=args.epochs,
                                    dense_units=args.dense_units)
            rows.append((seed, accuracies[0], accuracies[-1]))
            print(f"difficulty={difficulty:g} seed={seed} epoch1={accuracies[0]:.2f} "
                  f"epoch{args.epochs}={accuracies[-1]:.2f} "
                  f"curve={' '.join(f'{a:.2f}' for a in accuracies)} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    first = [r[1] for r in rows]
    last = [r[2] for r in rows]
    spread = statistics.stdev(last) if len(last) > 1 else 0.0
    print(f"difficulty={difficulty:g} seeds={len(rows)} mean epoch1={statistics.mean(first):.2f} "
          f"mean epoch{args.epochs}={statistics.mean(last):.2f} ± {spread:.2f} "
          f"(dense={args.dense_units}, {platform.machine()}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
