"""How far honest training of Part 2's CNN varies on the hidden grading split.

Trains the solution's from-scratch CNN (Part 2 of cnn_transfer: the source notebook's own
``a_cnn_architecture`` and ``a_cnn_compile`` cells, run in this process) once per seed
and data order, outside any sandbox, and prints each model's accuracy on the hidden split: the
spread an honest submission draws from when its code changes the CNN's random draws (an extra
layer, another fit call). ``course calibrate`` sets the pass mark from a few such runs of the
reference (docs/THRESHOLDS.md); this shows how many draws fall below it.

    .venv/bin/python bench/cnn_accuracy_spread.py --profile full --seeds 1234,1,2,3,4,5

Data orders: ``tfdata`` is the notebook's (tf.data shuffled with the seed, batches of the
course's batch size); ``arrays`` is ``fit(x, y, batch_size=..., shuffle=True)``.
"""

from __future__ import annotations

import argparse
import sys

sys.modules.setdefault("matplotlib", None)  # Keras imports pyplot when it can; nothing is drawn

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="reduced")
    parser.add_argument("--seeds", default="1234,1,2")
    args = parser.parse_args(argv)

    import contextlib
    import io
    import types

    import keras
    import nbformat
    import tensorflow as tf
    from keras import layers

    from autograder.course.config import load_course

    course = load_course()
    profile = course.config.profiles[args.profile]
    size, epochs = profile.image_size_px, profile.cnn_epochs
    batch = course.config.dataset.batch_size
    classes = ["handbags", "shoes"]
    data = course.release_root / "cnn_transfer" / "data"

    def load(folder):
        ds = keras.utils.image_dataset_from_directory(
            folder, labels="inferred", label_mode="binary", class_names=classes,
            image_size=(size, size), batch_size=None, shuffle=False, verbose=False)
        x, y = ds.batch(10_000).get_single_element()
        return x.numpy(), y.numpy()

    xt, yt = load(data / "train")
    xv, yv = load(data / "validation")
    xg, yg = load(course.dataset_hidden_dir / "grading")

    # The CNN and its compile settings are the source notebook's own solution cells, run here.
    source = course.source_root / "cnn_transfer" / "cnn_transfer.ipynb"
    cells = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c.source
             for c in nbformat.read(source, as_version=4).cells}

    def build(seed):
        namespace = {"keras": keras, "layers": layers, "IMAGE_SIZE": size,
                     "S": types.SimpleNamespace(seed=seed)}  # the cell seeds with S.seed
        with contextlib.redirect_stdout(io.StringIO()):  # the cell prints the summary
            exec(cells["a_cnn_architecture"], namespace)
            exec(cells["a_cnn_compile"], namespace)
        return namespace["cnn_model"]

    print(f"profile {args.profile}: {size} px, {epochs} epochs, batch {batch}; "
          f"{len(xt)} training, {len(xg)} hidden images")
    print("| seed | data order | hidden-split accuracy |\n|---:|---|---:|")
    accuracies = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for order in ("tfdata", "arrays"):
            model = build(seed)
            if order == "tfdata":
                ds = (tf.data.Dataset.from_tensor_slices((xt, yt))
                      .shuffle(len(xt), seed=seed, reshuffle_each_iteration=True).batch(batch))
                model.fit(ds, validation_data=(xv, yv), epochs=epochs, verbose=0)
            else:
                model.fit(xt, yt, batch_size=batch, shuffle=True, validation_data=(xv, yv),
                          epochs=epochs, verbose=0)
            p = model.predict(xg, verbose=0).reshape(-1)
            acc = float(np.mean((p > 0.5) == (yg.reshape(-1) > 0.5)))
            accuracies.append(acc)
            print(f"| {seed} | {order} | {acc:.3f} |", flush=True)
    a = np.array(accuracies)
    print(f"\n{len(a)} draws: min {a.min():.3f}, 10th percentile {np.percentile(a, 10):.3f}, "
          f"median {np.median(a):.3f}, max {a.max():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
