"""Verified ResNet50 ImageNet weights: import, fetch, status, resolve.

The weights live in one read-only cache (``weights.cache_dir``, overridden by
``$COURSE_WEIGHTS_DIR``) under the exact file name and md5 that Keras declares.
Everything that builds a ResNet50 -- the reference notebook, grading, the hub --
asks :func:`resolve_weights` for a path and hands that path to ``weights=``, so
Keras never downloads anything: a grading sandbox has no network, and 300
students should not each pull 100 MB.

Deliberately not here: Keras' own cache (``$KERAS_HOME``), which Keras may
rewrite or delete on a hash mismatch; and any download outside the explicit
``course weights fetch`` verb. Stand-in mode (untrained weights, labelled as
such) is a decision of the caller, reported as ``None``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from autograder.course.config import Course
from autograder.errors import WeightsError
from autograder.progress import Progress, report

DIR_ENV = "COURSE_WEIGHTS_DIR"
MODE_ENV = "COURSE_WEIGHTS_MODE"
STAND_IN = "stand-in"
IMAGENET = "imagenet"
FILE_MODE = 0o444
DIR_MODE = 0o755
_CHUNK = 1 << 20

# md5 states reported by weights_status().
MD5_OK = "ok"
MD5_BAD = "bad"
MD5_MISSING = "missing"

SEED_HINT = (
    "seed the cache once: `course weights import FILE` (a copy of the Keras file) "
    "or `course weights fetch` (on a machine with internet)"
)

Opener = Callable[[str], BinaryIO]
"""Opens a URL for reading; ``urllib.request.urlopen`` by default, a fake in tests."""


@dataclass(frozen=True)
class WeightsStatus:
    """What the cache holds, for ``course weights status`` and the hub's health page."""

    path: Path
    """Where the verified file is (or would be)."""
    mode: str
    """``imagenet`` or ``stand-in`` (config, overridden by ``$COURSE_WEIGHTS_MODE``)."""
    md5_state: str
    """``ok``, ``bad`` (a file with another hash) or ``missing``."""
    md5_found: str | None
    """The hash of the file that is there, ``None`` when there is none."""
    file_mode: int | None
    """Permission bits of the file (``0o444`` when installed by this module)."""
    size_bytes: int | None


def weights_mode(course: Course) -> str:
    """``stand-in`` when ``$COURSE_WEIGHTS_MODE`` or ``weights.mode`` says so, else ``imagenet``."""
    mode = os.environ.get(MODE_ENV) or course.config.weights.mode
    if mode not in (IMAGENET, STAND_IN):
        raise WeightsError(
            f"unknown weights mode {mode!r} (from ${MODE_ENV} or weights.mode)",
            hint=f"use {IMAGENET!r} or {STAND_IN!r}",
        )
    return mode


def weights_dir(course: Course) -> Path:
    """The cache folder: ``$COURSE_WEIGHTS_DIR``, else ``weights.cache_dir`` from the config."""
    env = os.environ.get(DIR_ENV)
    return Path(env).expanduser() if env else course.path(course.config.weights.cache_dir)


def weights_path(course: Course) -> Path:
    """Where the verified file is (or will be) installed."""
    return weights_dir(course) / course.config.weights.file_name


def file_md5(path: Path) -> str:
    """The md5 hex digest of a file, read in chunks (the file is ~95 MB)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_weights(course: Course, source: Path) -> Path:
    """Verify ``source`` against ``weights.md5`` and install it read-only; return the installed path.

    A file with the wrong hash is refused before anything in the cache changes.
    """
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"{source} is not a file", hint=SEED_HINT)
    expected = course.config.weights.md5
    found = file_md5(source)
    if found != expected:
        raise WeightsError(
            f"{source} has md5 {found}, not the {expected} declared for "
            f"{course.config.weights.file_name}",
            hint="import the Keras ResNet50 notop file itself "
            "(resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5), or fix weights.md5",
        )
    return _install(course, source)


def fetch_weights(
    course: Course, *, opener: Opener | None = None, progress: Progress | None = None
) -> Path:
    """Download ``weights.url`` into a temporary file, verify it, install it; return the path.

    The only network access in the kit, and only when an instructor asks for it.
    """
    url = course.config.weights.url
    open_url = opener or _urlopen
    folder = _ensure_dir(weights_dir(course))
    # Download next to the destination so the final rename cannot cross file systems.
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".fetch-", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with open_url(url) as response:
                total = int(getattr(response, "headers", {}).get("Content-Length", 0) or 0)
                done = 0
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    tmp.write(chunk)
                    done += len(chunk)
                    report(progress, done, total or done, "downloading weights")
        except OSError as exc:
            tmp_path.unlink(missing_ok=True)
            raise WeightsError(
                f"could not download {url}: {exc}",
                hint="on a machine without internet, copy the file in and run "
                "`course weights import FILE`",
            ) from exc
    try:
        return import_weights(course, tmp_path)
    finally:
        tmp_path.unlink(missing_ok=True)


def weights_status(course: Course) -> WeightsStatus:
    """Describe the cache without changing it."""
    path = weights_path(course)
    mode = weights_mode(course)
    if not path.is_file():
        return WeightsStatus(path, mode, MD5_MISSING, None, None, None)
    found = file_md5(path)
    info = path.stat()
    state = MD5_OK if found == course.config.weights.md5 else MD5_BAD
    return WeightsStatus(path, mode, state, found, stat.S_IMODE(info.st_mode), info.st_size)


def resolve_weights(course: Course) -> Path | None:
    """The verified weights file for ``keras.applications.ResNet50(weights=...)``.

    ``None`` in stand-in mode (the caller builds untrained weights and says so).
    Raises :class:`WeightsError`, naming the command that seeds the cache, when
    the file is missing or its md5 differs.
    """
    if weights_mode(course) == STAND_IN:
        return None
    status = weights_status(course)
    if status.md5_state == MD5_MISSING:
        raise WeightsError(
            f"the ResNet50 weights are not in the cache: {status.path} does not exist",
            hint=f"{SEED_HINT}; or set {MODE_ENV}={STAND_IN} to run with untrained weights",
        )
    if status.md5_state == MD5_BAD:
        raise WeightsError(
            f"{status.path} is corrupt: md5 {status.md5_found}, expected "
            f"{course.config.weights.md5}",
            hint=SEED_HINT,
        )
    return status.path


def _install(course: Course, source: Path) -> Path:
    dest = weights_path(course)
    folder = _ensure_dir(dest.parent)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".import-", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        shutil.copyfile(source, tmp_path)
        os.chmod(tmp_path, FILE_MODE)
        # Atomic rename: a reader never sees a half-written file under the real name.
        os.replace(tmp_path, dest)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise WeightsError(
            f"could not install {dest}: {exc}",
            hint=f"run as a user who may write {folder}, or set {DIR_ENV} to another folder",
        ) from exc
    return dest


def _ensure_dir(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, DIR_MODE)
    except OSError as exc:
        raise WeightsError(
            f"cannot create the weights cache {folder}: {exc}",
            hint=f"run as a user who may create it, or set {DIR_ENV} to another folder",
        ) from exc
    return folder


def _urlopen(url: str) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=60)  # noqa: S310 - the configured https URL
