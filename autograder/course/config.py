"""Find, load and validate ``course_config.py``.

The config file is data; this module is the only place that turns it into a
:class:`~autograder.course.settings.CourseConfig` and checks it against the
file system, one check per config section (:mod:`autograder.course.checks`).
Every problem names the field and the fix, the way pytest-timeout names where a
bad value came from.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from autograder.course.checks import SECTION_CHECKS
from autograder.course.consistency import points_notebook, read_points
from autograder.course.settings import Assignment, CourseConfig
from autograder.errors import ConfigError

CONFIG_FILE = "course_config.py"
ROOT_ENV = "COURSE_ROOT"
PROFILE_ENV = "COURSE_PROFILE"
SOURCE_DIR = "source"
"""nbgrader's source folder: the course root's, and that of any nbgrader course root the kit stages."""
RELEASE_DIR = "release"
"""nbgrader's release folder (the student versions), in the same roots."""
RUBRIC_DIR = "autograder/rubric"
"""Where a course root keeps its rubrics, one folder per assignment (``test_<item>`` checks)."""
KIT_RUBRIC_ROOT = Path(__file__).resolve().parent.parent / "rubric"
"""The installed kit's rubrics (the same folder when the course root is the kit's checkout)."""
GRADEBOOK_FILE = "gradebook.db"
"""nbgrader's gradebook database, in the course root (or an instructor's nbgrader course folder)."""
STATE_DIR = ".course-state"
"""The kit's own state in the course root: the demo's files and the trusted embeddings
(and the local hub's, by default); never released, never mounted into a sandbox."""


@dataclass(frozen=True)
class Course:
    """A loaded configuration and the folder it came from.

    Every folder the kit reads or writes in the course root is named here, once:
    fixed names as properties, configured ones resolved against :attr:`root`.
    """

    root: Path
    config: CourseConfig

    def path(self, relative: str) -> Path:
        """A path from the config, resolved against the course root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def source_dir(self, assignment_id: str) -> Path:
        return self.source_root / assignment_id

    def release_dir(self, assignment_id: str) -> Path:
        return self.release_root / assignment_id

    def rubric_dir(self, assignment_id: str) -> Path:
        """The assignment's rubric: ``autograder/rubric/<id>/`` of the course root when the
        course carries one there (this repository does; so does a course ``course new``
        scaffolded into), else the installed kit's."""
        own = self.root / RUBRIC_DIR / assignment_id
        return own if own.is_dir() else KIT_RUBRIC_ROOT / assignment_id

    @property
    def source_root(self) -> Path:
        """``source/``: the assignment notebooks with solutions."""
        return self.root / SOURCE_DIR

    @property
    def release_root(self) -> Path:
        """``release/``: the student versions, built by ``course release``."""
        return self.root / RELEASE_DIR

    @property
    def submitted_dir(self) -> Path:
        """Where ``course grade`` looks for submissions when given none."""
        return self.root / "submitted"

    @property
    def gradebook_file(self) -> Path:
        """The course's nbgrader gradebook (``course grade --gradebook`` may name another)."""
        return self.root / GRADEBOOK_FILE

    @property
    def autograded_dir(self) -> Path:
        """``grading.out_dir``: results.json, feedback.html and grades.csv per student."""
        return self.path(self.config.grading.out_dir)

    @property
    def answer_key_dir(self) -> Path:
        """``grading.answer_key_dir``: the calibrated answer keys (grader only)."""
        return self.path(self.config.grading.answer_key_dir)

    @property
    def dataset_build_dir(self) -> Path:
        """``dataset.build_dir``: the generated student splits."""
        return self.path(self.config.dataset.build_dir)

    @property
    def dataset_hidden_dir(self) -> Path:
        """``dataset.hidden_dir``: the generated grading split's parent (grader only)."""
        return self.path(self.config.dataset.hidden_dir)

    @property
    def dataset_manifest(self) -> Path:
        """``dataset.manifest``: every image file with its sha256."""
        return self.path(self.config.dataset.manifest)

    @property
    def state_dir(self) -> Path:
        """``.course-state/``: see :data:`STATE_DIR`."""
        return self.root / STATE_DIR

    @property
    def hub_state_dir(self) -> Path:
        """``hub.state_dir``: the local hub's database, cookies, logs, PIDs and service state."""
        return self.path(self.config.hub.state_dir)

    @property
    def demo_dir(self) -> Path:
        """``course demo``'s sample submissions and its own gradebook."""
        return self.state_dir / "demo"

    @property
    def embeddings_dir(self) -> Path:
        """The trusted embeddings caches of the hidden splits (grader only)."""
        return self.state_dir / "embeddings"

    @property
    def rendered_hub_dir(self) -> Path:
        """``hub/``: the production JupyterHub config written by ``course hub render``."""
        return self.root / "hub"


def find_root(start: Path | None = None) -> Path:
    """The course root: ``$COURSE_ROOT``, or the nearest folder above ``start`` with the config."""
    env = os.environ.get(ROOT_ENV)
    if env:
        root = Path(env).resolve()
        if not (root / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{ROOT_ENV}={env} has no {CONFIG_FILE}",
                hint=f"point {ROOT_ENV} at the course repository, or unset it",
            )
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_FILE} in {here} or any folder above it",
        hint=f"run the command inside the course repository or set {ROOT_ENV}",
    )


def _failing_line(exc: BaseException, path: Path) -> int | None:
    """The line of ``path`` where loading it failed (a syntax error's, else the last frame's)."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename == str(path) and exc.lineno:
        return exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return frames[-1].lineno if frames else None


def load_course(root: Path | None = None) -> Course:
    """Import ``course_config.py`` from the course root and return its ``COURSE``, each
    assignment's ``points`` read from its notebook (:func:`with_notebook_points`; empty
    when the notebook is missing or unusable, see :func:`assignment_points`)."""
    root = find_root() if root is None else Path(root).resolve()
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} does not exist", hint="create it from the course template")
    spec = importlib.util.spec_from_file_location("course_config", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the instructor's file: any error is a config error
        line = _failing_line(exc, path)
        where = f", line {line}," if line else ""
        raise ConfigError(
            f"{path}{where} failed to load: {type(exc).__name__}: {exc}",
            hint=(f"fix line {line} of {CONFIG_FILE}" if line else f"fix {CONFIG_FILE}")
            + "; the file must only build COURSE from dataclasses",
        ) from exc
    config = getattr(module, "COURSE", None)
    if not isinstance(config, CourseConfig):
        raise ConfigError(
            f"{path} defines no COURSE = CourseConfig(...)",
            hint="end the file with COURSE = CourseConfig(course_id=..., assignments=(...))",
        )
    return with_notebook_points(Course(root=root, config=config))


def with_notebook_points(course: Course) -> Course:
    """``course`` with each ``Assignment.points`` read from its notebook's autograded cells
    (the one place points are written; see :mod:`autograder.course.consistency`)."""
    assignments = []
    for i, assignment in enumerate(course.config.assignments):
        if assignment.points:
            raise ConfigError(
                f"{course.root / CONFIG_FILE}: assignments[{i}] ({assignment.assignment_id}) "
                "sets points=, but points are no longer read from course_config.py",
                hint="delete points={...} from the Assignment; each question's points are the "
                     "nbgrader points of its autograded cell in the source notebook")
        try:
            points = assignment_points(course, assignment)
        except ConfigError:  # what needs points asks again and gets the reason
            points = {}
        assignments.append(replace(assignment, points=points))
    return Course(root=course.root,
                  config=replace(course.config, assignments=tuple(assignments)))


def assignment_points(course: Course, assignment: Assignment) -> dict[str, float]:
    """``grade_id -> points`` from the assignment's notebook, or a :class:`ConfigError`
    naming the notebook and the fix. Loading a course never fails on this (building the data
    or starting the hub needs no notebook); grading, which needs the points, calls it."""
    notebook = points_notebook(course, assignment)
    return read_points(notebook, assignment_id=assignment.assignment_id)


def active_profile_name(config: CourseConfig) -> str:
    """The profile chosen by ``$COURSE_PROFILE``, else the config's default."""
    name = os.environ.get(PROFILE_ENV) or config.default_profile
    if name not in config.profiles:
        raise ConfigError(
            f"unknown profile {name!r} (from ${PROFILE_ENV} or default_profile)",
            hint=f"use one of: {', '.join(sorted(config.profiles))}",
        )
    return name


def check_config(course: Course, *, sections: Iterable[str] | None = None) -> list[str]:
    """Every problem in the config, each naming the field and the fix; empty when valid.

    ``sections`` limits the checks to those sections of
    :data:`~autograder.course.checks.SECTION_CHECKS` (e.g. ``("dataset",)``).
    """
    names = SECTION_CHECKS if sections is None else sections
    return [problem for name in names for problem in SECTION_CHECKS[name](course)]


def require_valid(course: Course) -> None:
    """Raise one :class:`ConfigError` listing every problem, if there are any."""
    problems = check_config(course)
    if problems:
        listing = "\n  ".join(problems)
        raise ConfigError(
            f"{course.root / CONFIG_FILE} has {len(problems)} problem(s):\n  {listing}",
            hint="fix each field named above, then run `course config check`",
        )
