"""One check per config section: a bad value in each section is reported under its field's name.

The field names come from the settings dataclasses themselves (``dataclasses.fields``),
so that a renamed field fails here instead of leaving a message that names a
field the instructor cannot find in course_config.py.
"""

from dataclasses import fields, replace
from pathlib import Path

import pytest

from autograder.course.checks import LIMIT_FIELDS, PROFILE_FIELDS, SECTION_CHECKS
from autograder.course.config import Course, check_config, load_course
from autograder.course.settings import (
    Assignment,
    CourseConfig,
    DatasetSettings,
    GradingSettings,
    HubSettings,
    Limits,
    Profile,
    WeightsSettings,
)

ROOT = Path(__file__).resolve().parents[2]

SECTION_TYPES = {"dataset": DatasetSettings, "weights": WeightsSettings, "limits": Limits,
                 "grading": GradingSettings, "hub": HubSettings}

# (section, field, bad value): one bad field of a settings section at a time.
BAD_SECTION_VALUES = [
    ("dataset", "source", "no/such/folder"),
    ("dataset", "classes", ("shoes",)),
    ("dataset", "split_sizes", {"train": 5, "validation": 5}),
    ("dataset", "image_size_px", 0),
    ("dataset", "batch_size", -1),
    ("dataset", "grading_split_size", 0),
    ("dataset", "difficulty", 1.5),
    ("dataset", "grading_seed", DatasetSettings().seed),
    ("weights", "mode", "random"),
    ("weights", "md5", "not-a-hash"),
    *[("limits", name, 0) for name in LIMIT_FIELDS],
    ("grading", "concurrency", 0),
    ("grading", "executor", "slurm"),
    ("grading", "sandbox_user_prefix", "Bad Prefix"),
    ("hub", "port", 80),
    ("hub", "proxy_api_port", 70000),
    ("hub", "hub_port", 1024),
    ("grading", "dask_tls_dir", "no-such-tls-folder"),
    ("grading", "dask_scheduler", "tls://scheduler.example.org:8786"),
    ("hub", "service_port", "8080"),
    ("hub", "students", ("Student One",)),
    ("hub", "demo_password", "short"),
    ("hub", "image_name", "Registry.Example.org/Course/Notebook"),
    ("hub", "image_tag", "not a tag"),
    ("hub", "image_tag", "latest"),
    ("hub", "cpu_grading_workers", -1),
    ("hub", "gpu_grading_workers", 1.5),
]


def _course(**changes) -> Course:
    course = load_course(ROOT)
    return Course(root=course.root, config=replace(course.config, **changes))


def test_every_config_section_has_a_check():
    """Is every field of CourseConfig checked by exactly one section check?"""
    config_fields = {f.name for f in fields(CourseConfig)}
    # default_profile is checked with profiles: it must name one of them.
    assert set(SECTION_CHECKS) | {"default_profile"} == config_fields


@pytest.mark.parametrize(("section", "field", "value"), BAD_SECTION_VALUES,
                         ids=[f"{s}.{f}" for s, f, _ in BAD_SECTION_VALUES])
def test_a_bad_value_names_its_section_and_field(section, field, value):
    """Does a bad value in a section give a problem that starts with ``section.field``?"""
    assert field in {f.name for f in fields(SECTION_TYPES[section])}
    course = load_course(ROOT)
    settings = replace(getattr(course.config, section), **{field: value})
    problems = check_config(_course(**{section: settings}))
    assert problems, f"{section}.{field} = {value!r} was accepted"
    assert any(p.startswith(f"{section}.{field}") for p in problems), problems
    # The section's own check finds it; no other section complains.
    assert problems == check_config(_course(**{section: settings}), sections=(section,))


@pytest.mark.parametrize("field", [*PROFILE_FIELDS])
def test_a_bad_profile_value_names_the_profile_and_field(field):
    assert field in {f.name for f in fields(Profile)}
    course = load_course(ROOT)
    profiles = {**course.config.profiles,
                "tiny": replace(course.config.profiles["reduced"], **{field: 0})}
    problems = check_config(_course(profiles=profiles))
    assert any(p.startswith(f"profiles['tiny'].{field}: 0 is not a positive number")
               for p in problems), problems


def test_default_profile_must_name_a_profile():
    problems = check_config(_course(default_profile="huge"))
    assert [p.split(":")[0] for p in problems] == ["default_profile"]


@pytest.mark.parametrize(("field", "value"), [
    ("assignment_id", "has space"),
    ("notebook", "missing.ipynb"),
    ("accuracy_margin", 1.0),
    ("calibration_seeds", ()),
    ("gpu", "yes"),
])
def test_a_bad_assignment_value_names_the_assignment_and_field(field, value):
    assert field in {f.name for f in fields(Assignment)}
    course = load_course(ROOT)
    a = replace(course.config.assignments[0], **{field: value})
    problems = check_config(_course(assignments=(a,)), sections=("assignments",))
    assert any(p.startswith(f"assignments[0].{field}: ") for p in problems), problems


def test_course_id_and_empty_assignments():
    problems = check_config(_course(course_id="1 bad", assignments=()))
    assert [p.split(":")[0] for p in problems] == ["course_id", "assignments"]


def test_problems_come_in_section_order():
    """With one bad value per section, do the problems follow the order of SECTION_CHECKS?"""
    course = load_course(ROOT)
    c = course.config
    bad = _course(
        course_id="1 bad",
        assignments=(replace(c.assignments[0], calibration_seeds=()),),
        dataset=replace(c.dataset, difficulty=2.0),
        weights=replace(c.weights, mode="random"),
        limits=replace(c.limits, memory_mb=0),
        default_profile="huge",
        grading=replace(c.grading, executor="slurm"),
        hub=replace(c.hub, demo_password="short"),
    )
    heads = [p.split(":")[0].split(".")[0].split("[")[0] for p in check_config(bad)]
    order = [name if name != "profiles" else "default_profile" for name in SECTION_CHECKS]
    assert heads == order


@pytest.mark.parametrize(("name", "fix"), [
    ("ghcr.io/course/notebook:1.0", "put the tag in hub.image_tag, not in the name"),
    ("Course Notebook", "use <registry>/<path> in lower case, e.g. ghcr.io/my-course/notebook"),
])
def test_a_bad_image_name_says_which_field_and_how_to_fix_it(name, fix):
    """Is the production image checked where the instructor sets it, with the fix spelt out?"""
    course = load_course(ROOT)
    problems = check_config(_course(hub=replace(course.config.hub, image_name=name)),
                            sections=("hub",))
    assert problems == [f"hub.image_name: {name!r} is not an image name — {fix}"]


def test_a_grading_cluster_needs_a_worker():
    course = load_course(ROOT)
    hub = replace(course.config.hub, cpu_grading_workers=0, gpu_grading_workers=0)
    assert check_config(_course(hub=hub), sections=("hub",)) == [
        "hub.cpu_grading_workers: the grading cluster has no worker — give "
        "hub.cpu_grading_workers or hub.gpu_grading_workers at least 1"]
