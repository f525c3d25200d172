"""The generated shoes/handbags dataset, its manifest, real-image folders and ``course data``."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import socket
from pathlib import Path

import pytest
from PIL import Image

from autograder.cli import main
from autograder.course.config import Course, load_course
from autograder.course.datasets import (
    build_dataset,
    class_counts,
    grading_split_dir,
    planned_counts,
    student_splits_dir,
    validate_image_folder,
    verify_dataset,
)
from autograder.course.painter import encode_jpeg, generate_image
from autograder.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]
SMALL = {"train": 5, "validation": 3, "test": 2}


def _course(root: Path, **dataset_changes: object) -> Course:
    """The repository's course, rooted in ``root``, with small splits unless told otherwise."""
    config = load_course(REPO).config
    changes = {"split_sizes": SMALL, "grading_split_size": 4, **dataset_changes}
    dataset = dataclasses.replace(config.dataset, **changes)
    return Course(root=root, config=dataclasses.replace(config, dataset=dataset))


def _image(**changes: object) -> bytes:
    inputs = {"seed": 7, "split": "train", "class_name": "shoes", "index": 3,
              "difficulty": 0.1, "size_px": 224, **changes}
    return encode_jpeg(generate_image(**inputs))  # type: ignore[arg-type]


def _real_folder(root: Path) -> Path:
    """A tiny real-image folder in the documented layout (two PNGs per class and split)."""
    for split in ("train", "validation", "test", "grading"):
        for name in ("handbags", "shoes"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (40 * i, 90, 160)).save(folder / f"img{i}.png")
    return root


def test_same_bytes_when_generated_twice() -> None:
    """Is an image the same bytes when generated twice?"""
    assert _image() == _image()


@pytest.mark.parametrize("change", [{"index": 4}, {"seed": 8}, {"split": "grading"},
                                    {"class_name": "handbags"}, {"difficulty": 0.5}])
def test_each_input_changes_the_image(change: dict[str, object]) -> None:
    """Does changing any one input (index, seed, split, class, difficulty) give another image?"""
    assert _image(**change) != _image()


def test_image_is_224px_rgb_jpeg() -> None:
    """Is a generated file a 224x224 RGB JPEG without metadata?"""
    with Image.open(io.BytesIO(_image())) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (224, 224))
        assert "exif" not in image.info


def test_unknown_class_is_refused() -> None:
    """Does the generator refuse a class it cannot draw, naming it?"""
    with pytest.raises(DatasetError, match="'sandals'"):
        generate_image(seed=1, split="train", class_name="sandals", index=0, difficulty=0.1)


def test_default_sizes_are_split_evenly() -> None:
    """Do the recitation's 97/50/38 images split as evenly as possible between the classes?"""
    plan = planned_counts(load_course(REPO))
    assert plan["train"] == {"handbags": 49, "shoes": 48}
    assert plan["validation"] == {"handbags": 25, "shoes": 25}
    assert plan["test"] == {"handbags": 19, "shoes": 19}
    assert plan["grading"] == {"handbags": 60, "shoes": 60}
    assert class_counts(7, ("a", "b", "c")) == {"a": 3, "b": 2, "c": 2}


def test_build_writes_the_configured_layout(tmp_path: Path) -> None:
    """Does the build put each split and class in its folder, with the configured counts?"""
    course = _course(tmp_path)
    result = build_dataset(course)
    assert student_splits_dir(course) == tmp_path / "datasets/build"
    assert grading_split_dir(course) == tmp_path / "datasets/hidden/grading"
    for split, per_class in planned_counts(course).items():
        folder = grading_split_dir(course) if split == "grading" else student_splits_dir(course) / split
        for name, n in per_class.items():
            assert sorted(p.name for p in (folder / name).iterdir()) == [
                f"{i:04d}.jpg" for i in range(n)]
    assert result.total == 5 + 3 + 2 + 4
    manifest = json.loads((tmp_path / "datasets/manifest.json").read_text())
    assert len(manifest["files"]) == result.total
    assert manifest["generator"]["difficulty"] == course.config.dataset.difficulty


def test_build_then_verify_passes_and_reports_progress(tmp_path: Path) -> None:
    """Does a fresh build verify cleanly, after reporting progress up to the total?"""
    course = _course(tmp_path)
    calls: list[tuple[int, int, str]] = []
    build_dataset(course, progress=lambda done, total, what: calls.append((done, total, what)))
    assert calls[-1][:2] == (14, 14)
    assert verify_dataset(course).ok


def test_verify_names_missing_changed_and_extra_files(tmp_path: Path) -> None:
    """Is each missing, changed or extra file reported by name?"""
    course = _course(tmp_path)
    build_dataset(course)
    build = student_splits_dir(course)
    (build / "train/shoes/0001.jpg").unlink()
    (build / "test/handbags/0000.jpg").write_bytes(_image(index=99))
    (grading_split_dir(course) / "shoes/9999.jpg").write_bytes(_image())
    with pytest.raises(DatasetError) as caught:
        verify_dataset(course)
    message = caught.value.message
    assert "missing: train/shoes/0001.jpg" in message
    assert "changed: test/handbags/0000.jpg" in message
    assert "extra: grading/shoes/9999.jpg" in message
    assert "course data build" in (caught.value.hint or "")


def test_rebuild_restores_and_removes_stale_files(tmp_path: Path) -> None:
    """Does building again repair changed files and remove images a smaller split no longer has?"""
    course = _course(tmp_path)
    build_dataset(course)
    (student_splits_dir(course) / "train/shoes/0000.jpg").write_bytes(b"x")
    smaller = _course(tmp_path, split_sizes={**SMALL, "train": 3})
    result = build_dataset(smaller)
    assert result.removed == ("train/handbags/0002.jpg", "train/shoes/0001.jpg")
    assert verify_dataset(smaller).ok


def test_verify_names_changed_generator_settings(tmp_path: Path) -> None:
    """Is a manifest built at another difficulty reported as stale, with the command to fix it?"""
    build_dataset(_course(tmp_path))
    with pytest.raises(DatasetError, match="other generator settings") as caught:
        verify_dataset(_course(tmp_path, difficulty=0.5))
    assert "course data build" in (caught.value.hint or "")


def test_committed_manifest_matches_the_generator() -> None:
    """Does the committed manifest still describe what the generator draws from course_config.py?"""
    course = load_course(REPO)
    manifest = json.loads((REPO / "datasets/manifest.json").read_text())
    d = course.config.dataset
    assert manifest["generator"]["difficulty"] == d.difficulty
    for split, name, seed in (("train", "handbags", d.seed), ("grading", "shoes", d.grading_seed)):
        data = _image(seed=seed, split=split, class_name=name, index=0,
                      difficulty=d.difficulty, size_px=d.image_size_px)
        assert manifest["files"][f"{split}/{name}/0000.jpg"] == hashlib.sha256(data).hexdigest()


def test_real_folder_is_validated_hashed_and_located(tmp_path: Path) -> None:
    """Does a real-image source get validated, put in the manifest and found by both dir functions?"""
    folder = _real_folder(tmp_path / "photos")
    course = _course(tmp_path, source=str(folder))
    result = build_dataset(course)
    assert result.counts["grading"] == {"handbags": 2, "shoes": 2}
    assert student_splits_dir(course) == folder
    assert grading_split_dir(course) == folder / "grading"
    assert not (tmp_path / "datasets/build").exists()
    assert verify_dataset(course).ok
    (folder / "train/shoes/img0.png").write_bytes(b"changed")
    with pytest.raises(DatasetError, match="changed: train/shoes/img0.png"):
        verify_dataset(course)


def test_corrupt_and_non_image_files_are_rejected_with_their_path(tmp_path: Path) -> None:
    """Are a truncated JPEG and a text file in a real-image folder each named in the error?"""
    folder = _real_folder(tmp_path / "photos")
    corrupt = folder / "train/handbags/broken.jpg"
    corrupt.write_bytes(_image()[:400])
    text = folder / "grading/shoes/notes.txt"
    text.write_text("not an image")
    with pytest.raises(DatasetError) as caught:
        validate_image_folder(folder)
    assert str(corrupt) in caught.value.message
    assert str(text) in caught.value.message


def test_missing_class_folder_is_named(tmp_path: Path) -> None:
    """Is a split without one of the class folders reported with the folder's path?"""
    folder = _real_folder(tmp_path / "photos")
    shutil.rmtree(folder / "validation/shoes")
    with pytest.raises(DatasetError, match="validation/shoes: missing folder"):
        validate_image_folder(folder)


def test_build_opens_no_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does a build work with the network made impossible?"""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dataset build tried to open a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert build_dataset(_course(tmp_path)).total == 14


def test_cli_verify_without_manifest_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Does `course data verify` exit 2 with the reason and a hint when nothing was built?"""
    shutil.copy(REPO / "course_config.py", tmp_path / "course_config.py")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert main(["data", "verify"]) == 2
    err = capsys.readouterr().err
    assert f"course data: error: no dataset manifest at {tmp_path / 'datasets/manifest.json'}" in err
    assert "hint: run `course data build` first" in err


def test_cli_rejects_a_missing_source_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Does `course data build` exit 2 naming dataset.source when its folder does not exist?"""
    text = (REPO / "course_config.py").read_text().replace(
        'source="generated"', 'source="no-such-folder"')
    (tmp_path / "course_config.py").write_text(text)
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert main(["data", "build"]) == 2
    assert "dataset.source" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["build", "verify"])
def test_every_subcommand_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Does each `course data` subcommand answer --help?"""
    with pytest.raises(SystemExit) as caught:
        main(["data", verb, "--help"])
    assert caught.value.code == 0
    assert "manifest" in capsys.readouterr().out
