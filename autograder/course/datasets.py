"""The image folders: generate the default shoes/handbags set, verify it, or validate a real one.

For ``dataset.source == "generated"`` this module writes every image that
:mod:`autograder.course.painter` draws (offline, reproducible byte for byte
with the pinned Pillow, never a download). Student splits go to
``dataset.build_dir``; the grading split, drawn from the independent
``dataset.grading_seed`` stream, goes to ``<hidden_dir>/grading`` and is never
released. ``dataset.manifest`` records every file's sha256 and the generator
settings, so ``verify_dataset`` can name each missing, changed or extra file.

For any other ``source`` the value is a folder of real images in the same
logical layout (``train|validation|test/<class>/`` and ``grading/<class>/``):
it is validated and hashed into the manifest, never copied.

Other modules find the images only through :func:`student_splits_dir` and
:func:`grading_split_dir`. This module prints nothing, trains nothing and does
not load images into tensors (Keras' ``image_dataset_from_directory`` does that).

Why shapes are drawn instead of shipped photos: no licence questions, no
network, a difficulty knob, and a grading split as large as wanted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from autograder.course.config import Course
from autograder.course.painter import (  # noqa: F401  (generate_image: re-exported for bench/)
    GENERATED_CLASSES,
    GENERATOR_VERSION,
    JPEG_QUALITY,
    encode_jpeg,
    generate_image,
)
from autograder.errors import DatasetError
from autograder.progress import Progress, report

STUDENT_SPLITS = ("train", "validation", "test")
GRADING_SPLIT = "grading"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
"""What Keras' ``image_dataset_from_directory`` reads; anything else in a class folder is an error."""


@dataclass(frozen=True)
class DatasetReport:
    """What a build or a verification found."""

    source: str
    """``"generated"`` or the real-image folder."""
    manifest: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Images per split and class, e.g. ``{"train": {"handbags": 49, "shoes": 48}}``."""
    missing: tuple[str, ...] = ()
    """Manifest entries with no file (logical paths such as ``train/shoes/0003.jpg``)."""
    changed: tuple[str, ...] = ()
    """Files whose sha256 differs from the manifest."""
    extra: tuple[str, ...] = ()
    """Files in a split folder that the manifest does not list."""
    removed: tuple[str, ...] = ()
    """Stale generated files a build deleted (e.g. after a split got smaller)."""

    @property
    def total(self) -> int:
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)


# --------------------------------------------------------------------------- where


def student_splits_dir(course: Course) -> Path:
    """The folder that holds ``train|validation|test/<class>/``, for either source."""
    d = course.config.dataset
    return course.dataset_build_dir if d.source == "generated" else course.path(d.source)


def grading_split_dir(course: Course) -> Path:
    """The folder that holds the hidden ``<class>/`` folders of the grading split."""
    d = course.config.dataset
    base = course.dataset_hidden_dir if d.source == "generated" else course.path(d.source)
    return base / GRADING_SPLIT


def _split_dir(course: Course, split: str) -> Path:
    if split == GRADING_SPLIT:
        return grading_split_dir(course)
    return student_splits_dir(course) / split


def class_counts(total: int, classes: Sequence[str]) -> dict[str, int]:
    """``total`` images shared as evenly as possible, earlier classes taking the remainder."""
    base, extra = divmod(total, len(classes))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(classes)}


def planned_counts(course: Course) -> dict[str, dict[str, int]]:
    """Images per split and class that the generator makes, from the config."""
    d = course.config.dataset
    sizes = {split: d.split_sizes[split] for split in STUDENT_SPLITS}
    sizes[GRADING_SPLIT] = d.grading_split_size
    return {split: class_counts(n, d.classes) for split, n in sizes.items()}


# --------------------------------------------------------------------------- build, verify


def generator_settings(course: Course) -> dict[str, object]:
    """What the generated files depend on; stored in the manifest so that drift is named."""
    d = course.config.dataset
    return {
        "version": GENERATOR_VERSION,
        "seed": d.seed,
        "grading_seed": d.grading_seed,
        "difficulty": d.difficulty,
        "image_size_px": d.image_size_px,
        "classes": list(d.classes),
        "split_sizes": {split: d.split_sizes[split] for split in STUDENT_SPLITS},
        "grading_split_size": d.grading_split_size,
        "jpeg_quality": JPEG_QUALITY,
        "pillow": Image.__version__,
    }


def build_dataset(course: Course, *, progress: Progress | None = None) -> DatasetReport:
    """Write every generated image and the manifest; for a real folder, validate and hash it."""
    d = course.config.dataset
    if d.source != "generated":
        counts = validate_image_folder(course.path(d.source), classes=d.classes)
        files = _hash_tree(course, progress=progress)
        _write_manifest(course, files=files, settings={"source": str(d.source)})
        return DatasetReport(source=d.source, manifest=course.dataset_manifest, counts=counts)
    plan = planned_counts(course)
    jobs = [(split, name, i) for split, per in plan.items() for name, n in per.items() for i in range(n)]
    files: dict[str, str] = {}
    for done, (split, name, index) in enumerate(jobs, start=1):
        seed = d.grading_seed if split == GRADING_SPLIT else d.seed
        data = encode_jpeg(generate_image(seed=seed, split=split, class_name=name, index=index,
                                          difficulty=d.difficulty, size_px=d.image_size_px))
        key = f"{split}/{name}/{index:04d}.jpg"
        path = _split_dir(course, split) / name / f"{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Rewrite only when different, so that an unchanged build keeps file times (rsync, make).
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        files[key] = hashlib.sha256(data).hexdigest()
        report(progress, done, len(jobs), key)
    removed = []
    on_disk = _scan(course)
    for key in sorted(set(on_disk) - set(files)):
        # Only stale images named like ours are removed; anything else stays and verify names it.
        if key.endswith(".jpg") and Path(key).stem.isdigit():
            on_disk[key].unlink()
            removed.append(key)
    _write_manifest(course, files=files, settings={"source": "generated",
                                                   "generator": generator_settings(course)})
    return DatasetReport(source="generated", manifest=course.dataset_manifest, counts=plan,
                         removed=tuple(removed))


def verify_dataset(course: Course) -> DatasetReport:
    """Compare the split folders with the manifest; raise naming every missing, changed or extra file."""
    d = course.config.dataset
    manifest_path = course.dataset_manifest
    manifest = _read_manifest(manifest_path)
    expected: dict[str, str] = manifest["files"]
    if d.source == "generated":
        recorded = manifest.get("generator")
        if recorded != generator_settings(course):
            raise DatasetError(
                f"{manifest_path} was built with other generator settings than course_config.py "
                f"(recorded {json.dumps(recorded, sort_keys=True)})",
                hint="run `course data build` to regenerate the images and the manifest",
            )
    elif manifest.get("source") != str(d.source):
        raise DatasetError(
            f"{manifest_path} describes source {manifest.get('source')!r}, "
            f"but dataset.source is {d.source!r}",
            hint="run `course data build` to validate the folder and rewrite the manifest",
        )
    on_disk = _scan(course)
    missing = tuple(sorted(set(expected) - set(on_disk)))
    extra = tuple(sorted(set(on_disk) - set(expected)))
    changed = tuple(sorted(k for k in set(expected) & set(on_disk)
                           if _sha256(on_disk[k]) != expected[k]))
    counts: dict[str, dict[str, int]] = {}
    for split in (*STUDENT_SPLITS, GRADING_SPLIT):
        for name in d.classes:
            n = sum(1 for key in expected if key.startswith(f"{split}/{name}/"))
            counts.setdefault(split, {})[name] = n
    result = DatasetReport(source=d.source, manifest=manifest_path, counts=counts,
                           missing=missing, changed=changed, extra=extra)
    if not result.ok:
        lines = [f"{what}: {key}" for what, keys in
                 (("missing", missing), ("changed", changed), ("extra", extra)) for key in keys]
        shown = "\n  ".join(lines[:50]) + (f"\n  ... and {len(lines) - 50} more" if len(lines) > 50 else "")
        raise DatasetError(
            f"the dataset does not match {manifest_path} "
            f"({len(missing)} missing, {len(changed)} changed, {len(extra)} extra):\n  {shown}",
            hint="run `course data build` to regenerate it (a real folder: restore the files "
                 "or rebuild the manifest on purpose)",
        )
    return result


def validate_image_folder(path: Path, *, classes: Sequence[str] = GENERATED_CLASSES
                          ) -> dict[str, dict[str, int]]:
    """Check a real-image folder: every split has every class, every file is a readable image.

    Returns the images per split and class; raises one :class:`DatasetError`
    naming every missing folder and every bad file.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist",
                           hint="fix dataset.source in course_config.py")
    problems: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for split in (*STUDENT_SPLITS, GRADING_SPLIT):
        for name in classes:
            folder = root / split / name
            if not folder.is_dir():
                problems.append(f"{folder}: missing folder")
                continue
            n = 0
            for file in sorted(folder.iterdir()):
                problem = _image_problem(file)
                if problem:
                    problems.append(f"{file}: {problem}")
                else:
                    n += 1
            if n == 0 and not any(folder.iterdir()):
                problems.append(f"{folder}: no images")
            counts.setdefault(split, {})[name] = n
    if problems:
        listing = "\n  ".join(problems)
        raise DatasetError(
            f"{root} is not a usable image folder ({len(problems)} problem(s)):\n  {listing}",
            hint=f"each of {', '.join((*STUDENT_SPLITS, GRADING_SPLIT))} needs the folders "
                 f"{', '.join(classes)} holding only {'/'.join(IMAGE_SUFFIXES)} images; "
                 "remove or replace the files named above",
        )
    return counts


def _image_problem(file: Path) -> str | None:
    """Why ``file`` cannot be a training image, or ``None``."""
    if not file.is_file():
        return "not a regular file"
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file name (Keras reads only {', '.join(IMAGE_SUFFIXES)})"
    try:
        # verify() catches truncated or mangled headers; load() catches broken pixel data.
        with Image.open(file) as image:
            image.verify()
        with Image.open(file) as image:
            image.load()
    except Exception as exc:  # Pillow raises many types for bad files; all mean "unreadable"
        return f"not a readable image ({type(exc).__name__}: {exc})"
    return None


def _scan(course: Course) -> dict[str, Path]:
    """Every file now in the split class folders, by logical path ``split/class/name``."""
    found: dict[str, Path] = {}
    for split in (*STUDENT_SPLITS, GRADING_SPLIT):
        for name in course.config.dataset.classes:
            folder = _split_dir(course, split) / name
            if folder.is_dir():
                for file in folder.iterdir():
                    found[f"{split}/{name}/{file.name}"] = file
    return found


def _hash_tree(course: Course, *, progress: Progress | None) -> dict[str, str]:
    files = sorted(_scan(course).items())
    hashes = {}
    for done, (key, path) in enumerate(files, start=1):
        hashes[key] = _sha256(path)
        report(progress, done, len(files), key)
    return hashes


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(course: Course, *, files: dict[str, str], settings: dict[str, object]) -> None:
    path = course.dataset_manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        **settings,
        "student_splits_dir": _display(course, student_splits_dir(course)),
        "grading_split_dir": _display(course, grading_split_dir(course)),
        "files": dict(sorted(files.items())),
    }
    # Stable text (sorted keys, fixed indent) so that git shows a real change as a small diff.
    path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")


def _display(course: Course, path: Path) -> str:
    try:
        return str(path.relative_to(course.root))
    except ValueError:
        return str(path)


def _read_manifest(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"no dataset manifest at {path}",
                           hint="run `course data build` first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not readable JSON ({exc})",
                           hint="restore it from git or run `course data build`") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DatasetError(f"{path} has no \"files\" table",
                           hint="restore it from git or run `course data build`")
    return manifest
