"""The checks behind ``course config check``: one small function per section of ``course_config.py``.

Each check takes the loaded :class:`~autograder.course.config.Course` (some
need the file system: notebooks, a real image folder) and
returns its problems, each ``"<field>: <what> — <fix>"``. :data:`SECTION_CHECKS`
lists them in the order ``check_config`` reports them, one entry per field of
:class:`~autograder.course.settings.CourseConfig`; a new section gets its check
here, beside the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING

from autograder.course.settings import TRAININGS, Assignment, HubSettings, Profile

if TYPE_CHECKING:
    from autograder.course.config import Course

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_IMAGE_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_IMAGE_PART}(?:/{_IMAGE_PART})*$")
"""An image reference without tag or digest (the Docker/OCI grammar): ``[host[:port]/]path``."""
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class _Problems(list):
    """The problems one check found, in the order it found them."""

    def bad(self, field: str, what: str, fix: str) -> None:
        self.append(f"{field}: {what} — {fix}")

    def positive(self, field: str, value: float) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            self.bad(field, f"{value!r} is not a positive number", "set a number above 0")


def check_course_id(course: Course) -> list[str]:
    out = _Problems()
    c = course.config
    if not _ID.match(c.course_id or ""):
        out.bad("course_id", f"{c.course_id!r} is not a valid id", "use letters, digits, - and _")
    return out


def check_assignments(course: Course) -> list[str]:
    out = _Problems()
    if not course.config.assignments:
        out.bad("assignments", "no assignment", "add at least one Assignment(...)")
    seen: set[str] = set()
    for i, a in enumerate(course.config.assignments):
        _check_assignment(out, course, f"assignments[{i}]", a, seen)
        seen.add(a.assignment_id)
    return out


def _check_assignment(out: _Problems, course: Course, where: str, a: Assignment,
                      seen: set[str]) -> None:
    if not _ID.match(a.assignment_id or ""):
        out.bad(f"{where}.assignment_id", f"{a.assignment_id!r} is not a valid id",
                "use letters, digits, - and _")
    if a.assignment_id in seen:
        out.bad(f"{where}.assignment_id", f"{a.assignment_id!r} appears twice", "make ids unique")
    notebook = course.source_dir(a.assignment_id) / a.notebook
    if not notebook.is_file():
        out.bad(f"{where}.notebook", f"{notebook} does not exist",
                "create it or fix the name in course_config.py")
    names = [*a.answer_names, *a.model_names, *a.history_names]
    for name in names:
        if not name.isidentifier():
            out.bad(f"{where}", f"{name!r} is not a Python name", "use a variable name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        out.bad(f"{where}", f"names listed twice: {', '.join(dupes)}", "list each name once")
    if not 0 <= a.accuracy_margin < 1:
        out.bad(f"{where}.accuracy_margin", f"{a.accuracy_margin!r} is outside [0, 1)",
                "use a fraction such as 0.15")
    if not a.calibration_seeds:
        out.bad(f"{where}.calibration_seeds", "empty", "give at least one seed")
    if a.gpu not in (None, True, False):
        out.bad(f"{where}.gpu", f"{a.gpu!r} is not True, False or None",
                "use None to follow grading.gpu")
    _check_materials(out, where, a)


ACCURACY_INPUTS = {"images": "uses_images", "embeddings": "uses_backbone"}
"""What a model may be fed on the hidden split, and the switch that input needs."""


def _check_materials(out: _Problems, where: str, a: Assignment) -> None:
    """The per-assignment declarations (trainings, accuracy inputs, step counts) name known
    trainings and models, and what they need is switched on."""
    for name in a.trainings:
        if name not in TRAININGS:
            out.bad(f"{where}.trainings", f"{name!r} is not a training of the profiles",
                    f"use some of: {', '.join(TRAININGS)}")
    for model, given in a.accuracy_inputs.items():
        if model not in a.model_names:
            out.bad(f"{where}.accuracy_inputs", f"{model!r} is not in model_names",
                    "list the model in model_names or remove it here")
        if given not in ACCURACY_INPUTS:
            out.bad(f"{where}.accuracy_inputs[{model!r}]", f"{given!r} is unknown",
                    f"use one of: {', '.join(ACCURACY_INPUTS)}")
        elif not getattr(a, ACCURACY_INPUTS[given]):
            out.bad(f"{where}.accuracy_inputs[{model!r}]", f"{given!r} needs "
                    f"{ACCURACY_INPUTS[given]}=True", f"set {ACCURACY_INPUTS[given]}=True")
    for model, training in a.step_counted.items():
        if model not in a.model_names:
            out.bad(f"{where}.step_counted", f"{model!r} is not in model_names",
                    "list the model in model_names or remove it here")
        if training not in a.trainings:
            out.bad(f"{where}.step_counted[{model!r}]", f"{training!r} is not in trainings",
                    "add it to trainings")
        if not a.uses_images:
            out.bad(f"{where}.step_counted", "counting steps needs the train split",
                    "set uses_images=True")


def check_dataset(course: Course) -> list[str]:
    out = _Problems()
    d = course.config.dataset
    if d.source != "generated" and not course.path(d.source).is_dir():
        out.bad("dataset.source", f"folder {course.path(d.source)} does not exist",
                'use "generated" or a folder with train/validation/test/grading')
    if len(d.classes) != 2 or len(set(d.classes)) != 2:
        out.bad("dataset.classes", f"{d.classes!r} is not two distinct names",
                "the assignment is binary: give two class folder names")
    for split in ("train", "validation", "test"):
        if split not in d.split_sizes:
            out.bad("dataset.split_sizes", f"no size for {split!r}", f"add {split!r}: N")
    for split, n in d.split_sizes.items():
        out.positive(f"dataset.split_sizes[{split!r}]", n)
    for name in ("image_size_px", "batch_size", "grading_split_size"):
        out.positive(f"dataset.{name}", getattr(d, name))
    if not 0 <= d.difficulty <= 1:
        out.bad("dataset.difficulty", f"{d.difficulty!r} is outside [0, 1]", "use e.g. 0.1")
    if d.seed == d.grading_seed:
        out.bad("dataset.grading_seed", "equals dataset.seed",
                "the grading split needs its own seed stream")
    return out


def check_weights(course: Course) -> list[str]:
    out = _Problems()
    w = course.config.weights
    if w.mode not in ("imagenet", "stand-in"):
        out.bad("weights.mode", f"{w.mode!r} is unknown", 'use "imagenet" or "stand-in"')
    if not _MD5.match(w.md5):
        out.bad("weights.md5", f"{w.md5!r} is not an md5 hex digest", "copy the hash Keras declares")
    return out


LIMIT_FIELDS = ("cell_timeout_s", "notebook_budget_s", "memory_mb", "max_processes",
                "output_bytes", "disk_mb", "file_size_mb", "export_mb")
"""The :class:`~autograder.course.settings.Limits` fields that must be positive numbers."""


def check_limits(course: Course) -> list[str]:
    out = _Problems()
    limits = course.config.limits
    for name in LIMIT_FIELDS:
        out.positive(f"limits.{name}", getattr(limits, name))
    if limits.cell_timeout_s > limits.notebook_budget_s:
        out.bad("limits.cell_timeout_s", "is longer than limits.notebook_budget_s",
                "make the per-cell timeout at most the whole-notebook budget")
    return out


PROFILE_FIELDS = tuple(f.name for f in fields(Profile))
"""The :class:`~autograder.course.settings.Profile` fields that must be positive numbers."""


def check_profiles(course: Course) -> list[str]:
    """``default_profile`` and ``profiles`` together: the default must name a profile."""
    out = _Problems()
    c = course.config
    if c.default_profile not in c.profiles:
        out.bad("default_profile", f"{c.default_profile!r} is not in profiles",
                f"use one of: {', '.join(sorted(c.profiles))}")
    for name, p in c.profiles.items():
        for f in PROFILE_FIELDS:
            out.positive(f"profiles[{name!r}].{f}", getattr(p, f))
        if p.image_size_px < 32:
            out.bad(f"profiles[{name!r}].image_size_px", "is below 32",
                    "ResNet50 needs at least 32x32 inputs")
    return out


def check_grading(course: Course) -> list[str]:
    out = _Problems()
    g = course.config.grading
    out.positive("grading.concurrency", g.concurrency)
    if g.executor not in ("local", "dask"):
        out.bad("grading.executor", f"{g.executor!r} is unknown", 'use "local" or "dask"')
    from autograder.errors import ConfigError
    from autograder.grading import dask_tls

    problem = dask_tls.scheme_problem(g.dask_scheduler, bool(g.dask_tls_dir))
    if problem:
        out.bad(*problem)
    if g.dask_tls_dir:
        try:
            dask_tls.require_files(dask_tls.tls_dir(course.root, g.dask_tls_dir))
        except ConfigError as exc:
            out.bad("grading.dask_tls_dir", exc.message.split(": ", 1)[-1], exc.hint)
    if not _UNIX_NAME.match(g.sandbox_user_prefix + "0"):
        out.bad("grading.sandbox_user_prefix", f"{g.sandbox_user_prefix!r} is not a Unix user name",
                "use lower-case letters, digits and -")
    return out


def check_hub(course: Course) -> list[str]:
    out = _Problems()
    h = course.config.hub
    ports = {"hub.port": h.port, "hub.proxy_api_port": h.proxy_api_port,
             "hub.hub_port": h.hub_port, "hub.service_port": h.service_port}
    for name, port in ports.items():
        if not isinstance(port, int) or not 1024 < port < 65536:
            out.bad(name, f"{port!r} is not a high port", "use a port between 1025 and 65535")
    if len(set(ports.values())) != len(ports):
        out.bad("hub", "two hub ports are equal", "give each hub port its own number")
    users = [h.instructor, *h.students]
    for user in users:
        if not _UNIX_NAME.match(user):
            out.bad("hub.students", f"{user!r} is not a Unix user name",
                    "use lower-case letters and digits")
    if len(set(users)) != len(users):
        out.bad("hub.students", "a user is listed twice", "give each user one entry")
    if len(h.demo_password) < 8:
        out.bad("hub.demo_password", "is shorter than 8 characters", "JupyterHub requires 8 or more")
    _check_image(out, h)
    _check_grading_workers(out, h)
    return out


def _check_image(out: _Problems, h: HubSettings) -> None:
    """The production image (``course hub render`` writes it into every manifest)."""
    name, tag = h.image_name, h.image_tag
    if not isinstance(name, str) or not _IMAGE_NAME.match(name):
        last = name.rsplit("/", 1)[-1] if isinstance(name, str) else ""
        fix = ("put the tag in hub.image_tag, not in the name" if ":" in last or "@" in last
               else "use <registry>/<path> in lower case, e.g. ghcr.io/my-course/notebook")
        out.bad("hub.image_name", f"{name!r} is not an image name", fix)
    if not isinstance(tag, str) or not _IMAGE_TAG.match(tag):
        out.bad("hub.image_tag", f"{tag!r} is not an image tag",
                "use the tag you pushed: letters, digits, '.', '_' and '-'")
    elif tag == "latest":
        out.bad("hub.image_tag", "'latest' names no particular build",
                "tag each build (e.g. 2025.1) and name that tag here")


def _check_grading_workers(out: _Problems, h: HubSettings) -> None:
    counts = {"hub.cpu_grading_workers": h.cpu_grading_workers,
              "hub.gpu_grading_workers": h.gpu_grading_workers}
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            out.bad(name, f"{count!r} is not a whole number of workers", "use 0 or more")
    if all(isinstance(n, int) and n == 0 for n in counts.values()):
        out.bad("hub.cpu_grading_workers", "the grading cluster has no worker",
                "give hub.cpu_grading_workers or hub.gpu_grading_workers at least 1")


SECTION_CHECKS: dict[str, Callable[[Course], list[str]]] = {
    "course_id": check_course_id,
    "assignments": check_assignments,
    "dataset": check_dataset,
    "weights": check_weights,
    "limits": check_limits,
    "profiles": check_profiles,  # with default_profile
    "grading": check_grading,
    "hub": check_hub,
}
"""Section name -> its check, in the order ``check_config`` reports problems."""
