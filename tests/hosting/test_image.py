"""The course image (``Dockerfile``), checked by reading it: no Docker here, so it is never built
in these tests (hub/README.md says so). Does it install what the kit needs, from the same pinned
pyproject.toml, with TensorFlow's extra chosen by a build argument, and leave the secrets out?"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from autograder.course.config import load_course
from autograder.grading import gradescope
from autograder.hosting import grading_cluster, k8s

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
TF_EXTRAS = {"cpu": "tensorflow-cpu", "gpu": "tensorflow[and-cuda]"}


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


def _runs(steps: list[tuple[str, str]]) -> str:
    return "\n".join(args for word, args in steps if word == "RUN")


def _commands(steps: list[tuple[str, str]]) -> list[str]:
    """Each ``&&``-joined command of every RUN, on its own."""
    return [cmd.strip() for word, args in steps if word == "RUN" for cmd in args.split("&&")]


def test_the_image_is_debian_12_with_bubblewrap(steps):
    """Is it Debian 12 with bubblewrap and util-linux (setpriv, prlimit) for the sandbox, and
    tini, which the rendered cluster starts every Dask process with?"""
    assert steps[0][0] == "FROM" and re.match(r"debian:(12|bookworm)\b", steps[0][1])
    (install,) = [cmd for cmd in _commands(steps) if "apt-get install" in cmd]
    packages = set(install.split())
    assert {"bubblewrap", "util-linux", "python3", "python3-venv", "tini"} <= packages
    assert "tini" in grading_cluster.render_grading_cluster(load_course(ROOT))[0][
        "spec"]["scheduler"]["spec"]["containers"][0]["command"]


def test_the_venv_is_made_from_debians_python(steps):
    assert "/usr/bin/python3 -m venv /srv/course/.venv" in _runs(steps)
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "PATH=/srv/course/.venv/bin:" in env and "COURSE_ROOT=/srv/course" in env


def test_the_kit_is_installed_from_pyproject_with_the_extra_of_a_build_argument(steps):
    """Is the kit installed (editable, so the workers' rubric mount imports) from pyproject.toml
    with `TF_EXTRA` (cpu by default), after the course is copied where the manifests expect it?"""
    assert ("ARG", "TF_EXTRA=cpu") in steps
    copy = steps.index(("COPY", f". {k8s.COURSE_ROOT_IN_IMAGE}"))
    (install,) = [i for i, (word, args) in enumerate(steps) if word == "RUN" and "pip install" in args]
    assert copy < install
    pip = [shlex.split(cmd) for cmd in _commands(steps) if "pip install" in cmd and "-e" in cmd]
    assert pip == [["/srv/course/.venv/bin/pip", "install", "--no-cache-dir", "-e",
                    ".[${TF_EXTRA},hub]"]]
    assert "case \"$TF_EXTRA\" in cpu|gpu) ;;" in _runs(steps)  # anything else stops the build


def test_pyproject_pins_one_tensorflow_per_extra():
    """Do the cpu and gpu extras pin the same TensorFlow, and the base dependencies none (the
    two wheels would overwrite each other)?"""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("tensorflow")]
    versions = set()
    for extra, package in TF_EXTRAS.items():
        (pin,) = project["optional-dependencies"][extra]
        name, _, version = pin.partition("==")
        assert name == package and version
        versions.add(version)
    assert len(versions) == 1


def test_every_install_of_the_kit_names_a_tensorflow_extra():
    """Without an extra the kit would have no TensorFlow: the grading host, Gradescope's
    image and this image each name one."""
    assert "-e '.[cpu,hub,dev]'" in (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert '-e "$KIT[cpu]"' in gradescope.SETUP_SH
    assert ".[${TF_EXTRA},hub]" in DOCKERFILE.read_text()


def test_the_image_leaves_every_secret_out():
    """Students run this image: does .dockerignore leave out each folder the workers mount from
    the grader's claim, the grader's state and output, and the test notebooks?"""
    ignored = {line.strip().strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    course = load_course(ROOT)
    secrets = {str(PurePosixPath(path).relative_to(k8s.COURSE_ROOT_IN_IMAGE))
               for path in grading_cluster.grader_only_paths(course.config).values()}
    assert secrets == {"datasets/hidden", "answer_keys", "autograder/rubric", "source"}
    assert secrets | {".course-state", "autograded", "submitted", "gradebook.db", "tests",
                      ".venv", ".git"} <= ignored
    assert not {"scripts", "release", "autograder", "course_config.py", "pyproject.toml"} & ignored


def test_the_image_bakes_the_sandbox_users_and_the_checkers_group(steps):
    """The workers' root is read-only: are the slot users and the checker's group made at build
    time, from course_config.py's grading settings?"""
    runs = _runs(steps)
    assert "ensure_sandbox_users(g.sandbox_user_prefix, g.concurrency)" in runs
    assert "ensure_grader_group()" in runs


def test_the_worker_entrypoint_checks_the_sandbox_and_becomes_a_dask_worker():
    script = ROOT / PurePosixPath(k8s.GRADING_WORKER_SCRIPT).relative_to(k8s.COURSE_ROOT_IN_IMAGE)
    assert script.is_file() and script.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "course sandbox check" in text
    assert text.rstrip().endswith('exec dask worker "$@"')


def test_the_image_runs_students_servers_unprivileged(steps):
    """Zero to JupyterHub's default command, as uid 1000, under tini."""
    assert ("USER", "1000") in steps
    assert ("CMD", '["jupyterhub-singleuser"]') in steps
    assert ("ENTRYPOINT", '["tini", "--"]') in steps
