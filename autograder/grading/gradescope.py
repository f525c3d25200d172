"""A Gradescope autograder package: the same grader, the same ``results.json``.

``course export gradescope <assignment>`` writes a zip that Gradescope's autograder image
runs: ``setup.sh`` (once, when the image is built) and ``run_autograder`` (once per
submission), both at the top of the zip, and ``course/``: the kit itself, the rubric, the
release folder, the data (student splits and the hidden grading split), the current answer
key for one profile and weights mode, and (ImageNet mode) the verified weights file.

``run_autograder`` grades ``/autograder/submission/<notebook>`` with ``course grade`` in
the sandbox, exactly as on the course's own machine, and copies the ``results.json`` it
wrote to ``/autograder/results/results.json``. Whatever happens, Gradescope gets a
``results.json``: when the grader itself fails, a zero that says so.

The package holds secrets (hidden split, answer key, and the source notebook, whose hash
the key's fingerprint names): upload it to Gradescope only, never hand it to students.

Gradescope's container must let bubblewrap create namespaces; where it cannot, ``course
grade`` refuses to run student code unsandboxed and every submission gets the grader-error
result (tested here: the package's ``run_autograder`` on a local folder laid out as
``/autograder``; not tested: Gradescope's own image).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from autograder.course.config import Course
from autograder.errors import ConfigError

KIT = "course"
"""The folder in the zip (and under ``/autograder/source``) holding the course and the kit."""
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")

_OVERRIDES = '''
# ---- written by `course export gradescope`: paths inside the package ----
import dataclasses as _dc
COURSE = _dc.replace(
    COURSE,
    grading=_dc.replace(COURSE.grading, answer_key_dir="answer_keys", concurrency=1),
    weights=_dc.replace(COURSE.weights, cache_dir="weights"),
)
'''

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
KIT="$(cd "$(dirname "$0")" && pwd)/{kit}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
    python3 python3-venv python3-dev bubblewrap util-linux build-essential
python3 -m venv "$KIT/.venv"
"$KIT/.venv/bin/pip" install -q --upgrade pip
"$KIT/.venv/bin/pip" install -q -e "$KIT[cpu]"
cd "$KIT"
COURSE_ROOT="$KIT" "$KIT/.venv/bin/course" sandbox setup
# Stand-in weights are generated (seeded, so the key still fits) here, once, not on the
# first submission; ImageNet weights came in the package.
{weights_setup}"""

WEIGHTS_SETUP = """COURSE_ROOT="$KIT" COURSE_WEIGHTS_DIR="$KIT/weights" "$KIT/.venv/bin/python" -c \\
    "from autograder.course.config import load_course; from autograder.course.standin import grader_weights; grader_weights(load_course(), mode='{weights_mode}')"
"""
"""Only for an assignment that uses the backbone; one without needs no weights at all."""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission. AUTOGRADER_ROOT lets a test run it elsewhere.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
KIT="${{COURSE_KIT:-$ROOT/source/{kit}}}"
VENV="${{COURSE_VENV:-$KIT/.venv}}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
fail() {{
    "$VENV/bin/python" - "$RESULTS" "$1" <<'EOF' || printf '{{"score": 0, "output": "The grader failed."}}' > "$RESULTS"
import json, sys
json.dump({{"score": 0.0, "output": "The grader could not grade this submission (" + sys.argv[2]
           + "). This is on our side; course staff will look at it.",
           "visibility": "visible", "tests": []}}, open(sys.argv[1], "w"))
EOF
    exit 0
}}
NB="$ROOT/submission/{notebook}"
[ -f "$NB" ] || fail "no {notebook} in the submission: upload the notebook itself, named {notebook}"
STUDENT="$("$VENV/bin/python" - "$ROOT/submission_metadata.json" <<'EOF'
import json, re, sys
try:
    users = json.load(open(sys.argv[1])).get("users") or [{{}}]
    sid = str(users[0].get("sid") or users[0].get("id") or "student")
except (OSError, ValueError, AttributeError):
    sid = "student"
print(re.sub(r"[^A-Za-z0-9_.@+-]", "_", sid).lstrip(".")[:64] or "student")
EOF
)" || STUDENT=student
WORK="$(mktemp -d)"
chmod 755 "$WORK"
cd "$KIT"
COURSE_ROOT="$KIT" COURSE_WEIGHTS_DIR="$KIT/weights" PYTHONPATH="$KIT" \\
    "$VENV/bin/python" -m autograder.cli grade {assignment} "$NB" --student "$STUDENT" \\
    --out "$WORK/out" --gradebook "$WORK/gradebook.db" --force \\
    --profile {profile}{weights_option}
status=$?
if [ -f "$WORK/out/$STUDENT/results.json" ]; then
    cp "$WORK/out/$STUDENT/results.json" "$RESULTS"
else
    fail "course grade exited with status $status and wrote no results"
fi
rm -rf "$WORK"
"""


def build_package(course: Course, assignment_id: str, *, profile: str, weights_mode: str,
                  key_file: Path, weights_file: Path | None, out: Path) -> Path:
    """Write the zip to ``out``; ``key_file`` must be the current key for this profile and
    weights mode, ``weights_file`` the verified ImageNet file (None in stand-in mode)."""
    assignment = course.config.assignment(assignment_id)
    with tempfile.TemporaryDirectory(prefix="course-gradescope-") as tmp:
        kit = Path(tmp) / KIT
        _copy_kit(course, kit, assignment_id)
        keys = kit / "answer_keys" / assignment_id
        keys.mkdir(parents=True)
        shutil.copy2(key_file, keys / key_file.name)
        (kit / "weights").mkdir()
        if weights_file is not None:
            shutil.copy2(weights_file, kit / "weights" / weights_file.name)
        backbone = assignment.uses_backbone
        values = {"kit": KIT, "notebook": assignment.notebook, "assignment": assignment_id,
                  "profile": profile,
                  "weights_setup": WEIGHTS_SETUP.format(weights_mode=weights_mode) if backbone
                  else "",
                  "weights_option": f" --weights-mode {weights_mode}" if backbone else ""}
        _script(Path(tmp) / "setup.sh", SETUP_SH.format(**values))
        _script(Path(tmp) / "run_autograder", RUN_AUTOGRADER.format(**values))
        out.parent.mkdir(parents=True, exist_ok=True)
        _zip(Path(tmp), out)
    return out


def _copy_kit(course: Course, kit: Path, assignment_id: str) -> None:
    kit_src = Path(__file__).resolve().parents[2]
    shutil.copytree(kit_src / "autograder", kit / "autograder", ignore=_SKIP)
    shutil.copy2(kit_src / "pyproject.toml", kit / "pyproject.toml")
    config = (course.root / "course_config.py").read_text()
    (kit / "course_config.py").write_text(config + _OVERRIDES)
    release = course.release_dir(assignment_id)
    if not release.is_dir():
        raise ConfigError(f"{release} does not exist", hint=f"run `course release {assignment_id}`")
    shutil.copytree(release, kit / release.relative_to(course.root), ignore=_SKIP)
    source = course.source_dir(assignment_id) / course.config.assignment(assignment_id).notebook
    (kit / source.relative_to(course.root)).parent.mkdir(parents=True)
    shutil.copy2(source, kit / source.relative_to(course.root))
    if not course.config.assignment(assignment_id).uses_images:
        return  # no split of any kind to ship, hidden or not
    for folder in (course.dataset_build_dir, course.dataset_hidden_dir):
        shutil.copytree(folder, kit / folder.relative_to(course.root), ignore=_SKIP)
    manifest = course.dataset_manifest
    shutil.copy2(manifest, kit / manifest.relative_to(course.root))


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _zip(folder: Path, out: Path) -> None:
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo.from_file(path, path.relative_to(folder).as_posix())
                mode = stat.S_IMODE(os.stat(path).st_mode)
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    tmp.replace(out)
