"""Which answer key a batch uses, and whether it still matches what it was derived from.

A key is one JSON file per assignment, profile and weights mode (``course calibrate``
writes it; grading refuses to start without a current one). Its ``fingerprint`` records
what the key was derived from: the source notebook, the profile, the accuracy margin, the
dataset manifest and the weights file. When any of them changes, the key is stale.

Plain values in, plain values out: this module knows nothing of a grading context, so the
pipeline (which resolves keys) and calibration (which writes them) both depend on it and
not on each other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def key_path(root: Path, key_dir: str, assignment_id: str, profile: str, weights_mode: str) -> Path:
    """``<key_dir>/<assignment>/<profile>-<weights mode>.json``; a relative ``key_dir`` is
    under the course root."""
    base = Path(key_dir) if Path(key_dir).is_absolute() else root / key_dir
    return base / assignment_id / f"{profile}-{weights_mode}.json"


def key_fingerprint(*, source_notebook: Path, profile: object, accuracy_margin: float,
                    manifest: Path | None, weights_file: Path | None) -> str:
    """A short hash of what a key is derived from. ``profile`` enters by its ``repr`` (a
    frozen dataclass: every field counts); the weights file by its name and size (hashing
    100 MB on every batch would cost more than it protects). ``manifest`` and ``weights_file``
    are None for an assignment that reads no images or uses no backbone."""
    parts = [
        hashlib.sha256(source_notebook.read_bytes()).hexdigest(),
        repr(profile),
        repr(accuracy_margin),
        hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest and manifest.is_file()
        else "-",
        f"{weights_file.name}:{weights_file.stat().st_size}" if weights_file else "-",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def key_is_current(key_file: Path, fingerprint: str) -> bool:
    """Does ``key_file`` exist, parse, and carry ``fingerprint``?"""
    if not key_file.is_file():
        return False
    try:
        return json.loads(key_file.read_text()).get("fingerprint") == fingerprint
    except (ValueError, AttributeError):
        return False


def pass_marks(key_file: Path) -> dict[str, float]:
    """Model name -> the accuracy it must reach on the hidden split, for the models whose
    accuracy is assessable; empty when the key is missing or unreadable."""
    try:
        key = json.loads(key_file.read_text())
        skip = set(key.get("not_assessable") or {})
        return {str(m): float(t) for m, t in (key.get("thresholds") or {}).items() if m not in skip}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
