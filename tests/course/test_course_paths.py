"""Course names every folder the kit keeps in the course root, once."""

from dataclasses import replace
from pathlib import Path

from autograder.course.config import GRADEBOOK_FILE, STATE_DIR, Course, load_course

ROOT = Path(__file__).resolve().parents[2]


def test_fixed_folders_live_in_the_course_root(tmp_path):
    course = Course(root=tmp_path, config=load_course(ROOT).config)
    assert course.source_dir("a") == tmp_path / "source" / "a"
    assert course.release_dir("a") == tmp_path / "release" / "a"
    assert course.gradebook_file == tmp_path / GRADEBOOK_FILE
    assert course.submitted_dir == tmp_path / "submitted"
    assert course.state_dir == tmp_path / STATE_DIR
    assert {course.demo_dir.parent, course.embeddings_dir.parent} == {course.state_dir}


def test_configured_folders_follow_the_config(tmp_path):
    config = load_course(ROOT).config
    config = replace(config,
                     grading=replace(config.grading, out_dir="out", answer_key_dir="/abs/keys"),
                     dataset=replace(config.dataset, build_dir="b", hidden_dir="h", manifest="m.json"),
                     hub=replace(config.hub, state_dir="hubstate"))
    course = Course(root=tmp_path, config=config)
    assert course.autograded_dir == tmp_path / "out"
    assert course.answer_key_dir == Path("/abs/keys")
    assert (course.dataset_build_dir, course.dataset_hidden_dir, course.dataset_manifest) == \
        (tmp_path / "b", tmp_path / "h", tmp_path / "m.json")
    assert course.hub_state_dir == tmp_path / "hubstate"


def test_the_default_hub_state_is_inside_the_state_folder(tmp_path):
    """The hub's state, the demo's and the embeddings share .course-state/ by default."""
    course = Course(root=tmp_path, config=load_course(ROOT).config)
    assert course.hub_state_dir.parent == course.state_dir
