"""The trusted embeddings cache is computed once per key and never half-written."""

import pytest

from autograder.grading import embeddings


def split(folder, files):
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def complete():
    return {name: name.encode() for name in embeddings.cache_files()}


def test_the_cache_is_computed_once_per_key(tmp_path):
    """Does a second batch with the same key reuse the cache instead of embedding again?"""
    calls = []

    def compute():
        calls.append(1)
        return complete()

    first = embeddings.ensure(tmp_path / "state" / "embeddings", "k1", compute)
    again = embeddings.ensure(tmp_path / "state" / "embeddings", "k1", compute)
    assert first == again and len(calls) == 1
    assert embeddings.is_ready(first)
    assert (first / embeddings.FILES["grading"]).read_bytes() == b"grading.npy"


def test_an_incomplete_set_is_refused_and_leaves_no_cache(tmp_path):
    """Would a run that produced only some files leave a cache that later batches trust?"""
    partial = complete()
    del partial[embeddings.PRETRAINED_FILE]
    with pytest.raises(ValueError, match=embeddings.PRETRAINED_FILE):
        embeddings.ensure(tmp_path / "state" / "embeddings", "k1", lambda: partial)
    assert not embeddings.is_ready(tmp_path / "state" / "embeddings" / "k1")


def test_the_key_changes_with_the_splits_and_the_image_size(tmp_path):
    """Does changing a hidden image, adding one, or the image size give a new cache key?"""
    grading = split(tmp_path / "grading", {"shoes/0.jpg": b"aa", "handbags/0.jpg": b"bbb"})
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"w")
    base = embeddings.cache_key(weights, 64, [grading])
    assert embeddings.cache_key(weights, 64, [grading]) == base
    assert embeddings.cache_key(weights, 224, [grading]) != base
    split(grading, {"shoes/0.jpg": b"aaaa"})
    resized = embeddings.cache_key(weights, 64, [grading])
    assert resized != base
    split(grading, {"shoes/1.jpg": b"c"})
    assert embeddings.cache_key(weights, 64, [grading]) != resized
