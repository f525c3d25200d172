"""After `course demo --no-hub` as root, is every secret under the course root closed to other
users, the release still open to them, and every assignment graded?

The demo is the one command that writes every kind of secret the kit has: the answer key
(calibrate), the trusted embeddings of the grading split, the reference solution and sample
submissions, graded output (results, feedback of every student) and a gradebook. Students on
the local hub have shells on the same machine, so each of these must be closed by the
command that writes it. The secrets are named by the kit's own `Course` properties; every
path under the course root is walked, and judged by its modes and its parents' the way the
kernel judges another user's access."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder.course.config import Course, load_course

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.sandbox,
              pytest.mark.skipif(os.geteuid() != 0, reason="the demo closes files as root")]


def secret_roots(course: Course) -> list[Path]:
    """What holds solutions, keys, hidden data, grades or other students' work, by the kit's
    own names."""
    return [course.source_root, course.answer_key_dir, course.dataset_hidden_dir,
            course.state_dir, course.demo_dir, course.embeddings_dir, course.hub_state_dir,
            course.gradebook_file, course.autograded_dir, course.submitted_dir]


def other_can_reach(path: Path, *, root: Path) -> bool:
    """Could a user who is neither the owner nor in the group read ``path`` (list it, for a
    folder)? Every folder from ``root`` down must let others through (x), and the path itself
    let them read (r; a folder also x)."""
    for folder in reversed(path.relative_to(root).parents):  # ".", then down to the parent
        if not os.lstat(root / folder).st_mode & stat.S_IXOTH:
            return False
    mode = os.lstat(path).st_mode
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def _copy_course(root: Path) -> None:
    """The course as a fresh clone has it (config, source, release, data), modes 755/644."""
    skip = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(REPO / name, root / name)
    for name in ("source", "release", "datasets"):
        shutil.copytree(REPO / name, root / name, ignore=skip, symlinks=False)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def demo_root():
    base = Path(tempfile.mkdtemp(prefix="course-demo-perm-"))
    base.chmod(0o755)  # the sandbox's uid and the checker must reach the course inside
    root = base / "course"
    root.mkdir()
    _copy_course(root)
    weights = base / "weights"  # empty: the demo runs with stand-in weights, as it says
    weights.mkdir(mode=0o755)
    env = {**os.environ, "COURSE_ROOT": str(root), "COURSE_WEIGHTS_DIR": str(weights)}
    env.pop("COURSE_PROFILE", None)
    done = subprocess.run([sys.prefix + "/bin/course", "demo", "--no-hub", "--profile", "reduced"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (base / "demo.log").write_text(done.stdout + done.stderr)  # what the instructor saw
    yield root
    shutil.rmtree(base, ignore_errors=True)


def test_every_secret_path_is_closed_to_other_users_after_the_demo(demo_root: Path) -> None:
    """Is no path under a secret (source, answer keys, hidden split, .course-state with the
    demo's submissions and embeddings, the gradebook, graded output) readable by another
    user, while everything the demo wrote is there to judge?"""
    course = load_course(demo_root)
    roots = secret_roots(course)
    # the demo wrote each kind of secret (else this test would judge nothing)
    for written in (course.answer_key_dir, course.embeddings_dir,
                    course.demo_dir / "submissions", course.demo_dir / "gradebook.db",
                    course.autograded_dir / "demo"):
        assert written.exists(), written
    leaks = []
    for dirpath, dirnames, filenames in os.walk(demo_root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if any(path == top or top in path.parents for top in roots) \
                    and other_can_reach(path, root=demo_root):
                leaks.append(f"{oct(os.lstat(path).st_mode & 0o7777)} "
                             f"{path.relative_to(demo_root)}")
    assert not leaks, "readable by other users:\n" + "\n".join(leaks[:40])


def test_the_release_stays_readable_after_the_demo(demo_root: Path) -> None:
    """Can another user still read every file of release/ (what students are handed)?"""
    course = load_course(demo_root)
    files = [p for p in course.release_root.rglob("*") if p.is_file()]
    assert files
    closed = [str(p.relative_to(demo_root)) for p in files
              if not other_can_reach(p, root=demo_root)]
    assert not closed, closed[:20]


def test_the_demo_grades_every_assignment_into_its_own_gradebook(demo_root: Path) -> None:
    """Does the demo grade each assignment of the course (not only the first) into the demo's
    gradebook, with the gradebook agreeing with each results.json, and the reference solution
    of a weights-free assignment at full points?"""
    import json

    from nbgrader.api import Gradebook

    course = load_course(demo_root)
    with Gradebook(f"sqlite:///{course.demo_dir / 'gradebook.db'}") as gb:
        graded = {a.name: {s.student.id: s.score for s in a.submissions} for a in gb.assignments}
    assert set(graded) == {a.assignment_id for a in course.config.assignments}
    for a in course.config.assignments:
        out = course.autograded_dir / "demo" / a.assignment_id
        results = {p.parent.name: json.loads(p.read_text())["score"] for p in out.glob("*/results.json")}
        assert results and graded[a.assignment_id] == pytest.approx(results), a.assignment_id
        if not a.uses_backbone:  # nothing depends on the stand-in weights: the reference is exact
            assert results["reference"] == sum(a.points.values()) and results["unanswered"] == 0
    # the demo's students never reach the course's real gradebook
    if course.gradebook_file.exists():
        with Gradebook(f"sqlite:///{course.gradebook_file}") as gb:
            assert not gb.students, [s.id for s in gb.students]


def test_the_demo_console_shows_no_library_warnings(demo_root: Path) -> None:
    """Does the demo's console stay free of library warnings (nbgrader's SQLAlchemy ones,
    TensorFlow's start-up chatter)?"""
    seen = (demo_root.parent / "demo.log").read_text()
    chatter = ("SAWarning", "Warning:", "WARNING:", "absl::", "cpu_feature_guard")
    assert not any(word in seen for word in chatter), \
        [line for line in seen.splitlines() if any(word in line for word in chatter)][:5]
