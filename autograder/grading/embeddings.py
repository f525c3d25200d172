"""The trusted embeddings cache: one folder per (weights, image size, hidden splits).

The transfer-learning head is graded on embeddings, not images, and every submission's
head is checked on the same ones; so the trusted backbone embeds both hidden splits once
(in the checker's confinement, ``python -m autograder.grading.trusted``) and every batch
that shares the key reuses them. This module owns the cache: its file names, its key, its
folder, when it is complete, and how a computed set is stored. It imports nothing heavy,
so the checker-side readers (``trusted``, ``factsheet``, ``rubric_plugin``) take the file
names from here too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

FILES = {
    "grading": "grading.npy",
    "validation": "validation.npy",
    "grading_mid": "grading_mid.npy",
    "validation_mid": "validation_mid.npy",
    "backbone_layers": "backbone_layers.json",
}
"""Embeddings of both hidden splits, the activations before the last block (``*_mid``), and
the backbone's per-layer signatures in order."""
PRETRAINED_FILE = "backbone_weights.npz"
"""Every layer's pretrained weights, as ``"<layer>:<i>"`` arrays: checks compare frozen layers
against it without building ResNet50 again in each checker run."""


def cache_files() -> list[str]:
    return [*FILES.values(), PRETRAINED_FILE]


def is_ready(cache_dir: Path) -> bool:
    return all((cache_dir / name).is_file() for name in cache_files())


def cache_key(weights_file: Path | None, image_size_px: int, folders: Iterable[Path]) -> str:
    """Names the weights (path, size, mtime), the image size, and every file of the splits."""
    parts = [str(weights_file), str(image_size_px)]
    if weights_file is not None and weights_file.is_file():
        info = weights_file.stat()
        parts += [str(info.st_size), str(info.st_mtime_ns)]
    for folder in folders:
        parts += [f"{p.relative_to(folder)}:{p.stat().st_size}" for p in sorted(folder.rglob("*"))
                  if p.is_file()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def store(cache_dir: Path, files: dict[str, bytes]) -> None:
    """Write a complete computed set; each file appears whole (temporary name, then rename)."""
    missing = sorted(set(cache_files()) - set(files))
    if missing:
        raise ValueError(f"embeddings cache incomplete, missing {', '.join(missing)}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name in cache_files():
        tmp = cache_dir / (name + ".tmp")
        tmp.write_bytes(files[name])
        tmp.chmod(0o644)
        tmp.replace(cache_dir / name)


def ensure(cache_root: Path, key: str, compute: Callable[[], dict[str, bytes]]) -> Path:
    """The cache folder for ``key`` under ``cache_root`` (``Course.embeddings_dir``), computed
    with ``compute`` (which returns file name -> bytes) only when it is not complete yet."""
    cache_root.parent.mkdir(exist_ok=True)
    cache_root.parent.chmod(0o755)  # the state folder: hub/ (private), embeddings/ (the grader's)
    cache = cache_root / key
    if not is_ready(cache):
        store(cache, compute())
    return cache
