"""Find, load and validate ``course_config.py``.

The config file is data; this module is the only place that turns it into a
:class:`~autograder.course.settings.CourseConfig` and checks it against the
file system. Every problem names the field and the fix, the way pytest-timeout
names where a bad value came from.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from autograder.course.settings import CourseConfig
from autograder.errors import ConfigError

CONFIG_FILE = "course_config.py"
ROOT_ENV = "COURSE_ROOT"
PROFILE_ENV = "COURSE_PROFILE"
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Course:
    """A loaded configuration and the folder it came from."""

    root: Path
    config: CourseConfig

    def path(self, relative: str) -> Path:
        """A path from the config, resolved against the course root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def source_dir(self, assignment_id: str) -> Path:
        return self.root / "source" / assignment_id

    def release_dir(self, assignment_id: str) -> Path:
        return self.root / "release" / assignment_id

    def rubric_dir(self, assignment_id: str) -> Path:
        return Path(__file__).resolve().parent.parent / "rubric" / assignment_id


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
    """Import ``course_config.py`` from the course root and return its ``COURSE``."""
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
    return Course(root=root, config=config)


def active_profile_name(config: CourseConfig) -> str:
    """The profile chosen by ``$COURSE_PROFILE``, else the config's default."""
    name = os.environ.get(PROFILE_ENV) or config.default_profile
    if name not in config.profiles:
        raise ConfigError(
            f"unknown profile {name!r} (from ${PROFILE_ENV} or default_profile)",
            hint=f"use one of: {', '.join(sorted(config.profiles))}",
        )
    return name


def check_config(course: Course) -> list[str]:
    """Every problem in the config, each naming the field and the fix; empty when valid."""
    c = course.config
    problems: list[str] = []

    def bad(field: str, what: str, fix: str) -> None:
        problems.append(f"{field}: {what} — {fix}")

    def positive(field: str, value: float) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            bad(field, f"{value!r} is not a positive number", "set a number above 0")

    if not _ID.match(c.course_id or ""):
        bad("course_id", f"{c.course_id!r} is not a valid id", "use letters, digits, - and _")
    if not c.assignments:
        bad("assignments", "no assignment", "add at least one Assignment(...)")
    seen: set[str] = set()
    for i, a in enumerate(c.assignments):
        where = f"assignments[{i}]"
        if not _ID.match(a.assignment_id or ""):
            bad(f"{where}.assignment_id", f"{a.assignment_id!r} is not a valid id",
                "use letters, digits, - and _")
        if a.assignment_id in seen:
            bad(f"{where}.assignment_id", f"{a.assignment_id!r} appears twice", "make ids unique")
        seen.add(a.assignment_id)
        notebook = course.source_dir(a.assignment_id) / a.notebook
        if not notebook.is_file():
            bad(f"{where}.notebook", f"{notebook} does not exist",
                f"create it or fix the name in course_config.py")
        names = [*a.answer_names, *a.model_names, *a.history_names]
        for name in names:
            if not name.isidentifier():
                bad(f"{where}", f"{name!r} is not a Python name", "use a variable name")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            bad(f"{where}", f"names listed twice: {', '.join(dupes)}", "list each name once")
        if not a.points:
            bad(f"{where}.points", "no rubric item", "give each rubric test its points")
        for item, pts in a.points.items():
            positive(f"{where}.points[{item!r}]", pts)
        rubric = course.rubric_dir(a.assignment_id)
        if rubric.is_dir():
            missing = sorted(set(a.points) - _rubric_test_names(rubric))
            if missing:
                bad(f"{where}.points", f"no rubric test named {', '.join(missing)} in {rubric}",
                    "rename the item or add the test")
        if not 0 <= a.accuracy_margin < 1:
            bad(f"{where}.accuracy_margin", f"{a.accuracy_margin!r} is outside [0, 1)",
                "use a fraction such as 0.15")
        if not a.calibration_seeds:
            bad(f"{where}.calibration_seeds", "empty", "give at least one seed")

    d = c.dataset
    if d.source != "generated" and not course.path(d.source).is_dir():
        bad("dataset.source", f"folder {course.path(d.source)} does not exist",
            'use "generated" or a folder with train/validation/test/grading')
    if len(d.classes) != 2 or len(set(d.classes)) != 2:
        bad("dataset.classes", f"{d.classes!r} is not two distinct names",
            "the assignment is binary: give two class folder names")
    for split in ("train", "validation", "test"):
        if split not in d.split_sizes:
            bad("dataset.split_sizes", f"no size for {split!r}", f"add {split!r}: N")
    for split, n in d.split_sizes.items():
        positive(f"dataset.split_sizes[{split!r}]", n)
    for name in ("image_size_px", "batch_size", "grading_split_size"):
        positive(f"dataset.{name}", getattr(d, name))
    if not 0 <= d.difficulty <= 1:
        bad("dataset.difficulty", f"{d.difficulty!r} is outside [0, 1]", "use e.g. 0.1")
    if d.seed == d.grading_seed:
        bad("dataset.grading_seed", "equals dataset.seed",
            "the grading split needs its own seed stream")

    w = c.weights
    if w.mode not in ("imagenet", "stand-in"):
        bad("weights.mode", f"{w.mode!r} is unknown", 'use "imagenet" or "stand-in"')
    if not _MD5.match(w.md5):
        bad("weights.md5", f"{w.md5!r} is not an md5 hex digest", "copy the hash Keras declares")

    for name in ("cell_timeout_s", "notebook_budget_s", "memory_mb", "max_processes",
                 "output_bytes", "disk_mb", "file_size_mb", "export_mb"):
        positive(f"limits.{name}", getattr(c.limits, name))
    if c.limits.cell_timeout_s > c.limits.notebook_budget_s:
        bad("limits.cell_timeout_s", "is longer than limits.notebook_budget_s",
            "make the per-cell timeout at most the whole-notebook budget")

    if c.default_profile not in c.profiles:
        bad("default_profile", f"{c.default_profile!r} is not in profiles",
            f"use one of: {', '.join(sorted(c.profiles))}")
    for name, p in c.profiles.items():
        for f in ("image_size_px", "cnn_epochs", "head_epochs", "finetune_epochs"):
            positive(f"profiles[{name!r}].{f}", getattr(p, f))
        if p.image_size_px < 32:
            bad(f"profiles[{name!r}].image_size_px", "is below 32",
                "ResNet50 needs at least 32x32 inputs")

    g = c.grading
    positive("grading.concurrency", g.concurrency)
    if g.executor not in ("local", "dask"):
        bad("grading.executor", f"{g.executor!r} is unknown", 'use "local" or "dask"')
    if not _UNIX_NAME.match(g.sandbox_user_prefix + "0"):
        bad("grading.sandbox_user_prefix", f"{g.sandbox_user_prefix!r} is not a Unix user name",
            "use lower-case letters, digits and -")

    h = c.hub
    ports = {"hub.port": h.port, "hub.proxy_api_port": h.proxy_api_port,
             "hub.hub_port": h.hub_port, "hub.service_port": h.service_port}
    for name, port in ports.items():
        if not isinstance(port, int) or not 1024 < port < 65536:
            bad(name, f"{port!r} is not a high port", "use a port between 1025 and 65535")
    if len(set(ports.values())) != len(ports):
        bad("hub", "two hub ports are equal", "give each hub port its own number")
    users = [h.instructor, *h.students]
    for user in users:
        if not _UNIX_NAME.match(user):
            bad("hub.students", f"{user!r} is not a Unix user name", "use lower-case letters and digits")
    if len(set(users)) != len(users):
        bad("hub.students", "a user is listed twice", "give each user one entry")
    if len(h.demo_password) < 8:
        bad("hub.demo_password", "is shorter than 8 characters", "JupyterHub requires 8 or more")
    return problems


def _rubric_test_names(rubric_dir: Path) -> set[str]:
    """Names of ``test_<item>`` functions in the rubric folder, without the prefix."""
    names: set[str] = set()
    for file in rubric_dir.glob("test_*.py"):
        for match in re.finditer(r"^def test_(\w+)\(", file.read_text(), re.MULTILINE):
            names.add(match.group(1))
    return names


def require_valid(course: Course) -> None:
    """Raise one :class:`ConfigError` listing every problem, if there are any."""
    problems = check_config(course)
    if problems:
        listing = "\n  ".join(problems)
        raise ConfigError(
            f"{course.root / CONFIG_FILE} has {len(problems)} problem(s):\n  {listing}",
            hint="fix each field named above, then run `course config check`",
        )
