"""The weights cache: verified imports, read-only installs, clear errors, no network."""

from __future__ import annotations

import hashlib
import socket
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.course.config import Course, load_course
from autograder.course.weights import (
    MD5_BAD,
    MD5_MISSING,
    MD5_OK,
    fetch_weights,
    import_weights,
    resolve_weights,
    weights_path,
    weights_status,
)
from autograder.errors import WeightsError

REPO = Path(__file__).resolve().parents[2]
FAKE_BYTES = b"not really ResNet50, but its md5 is what the test config declares\n"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a socket fails the test loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights code opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Course:
    """The real course config with the fake file's md5 and a temporary cache."""
    monkeypatch.delenv("COURSE_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("COURSE_WEIGHTS_MODE", raising=False)
    real = load_course(REPO)
    weights = replace(
        real.config.weights,
        md5=hashlib.md5(FAKE_BYTES).hexdigest(),
        cache_dir=str(tmp_path / "cache" / "weights"),
        mode="imagenet",
    )
    return Course(root=real.root, config=replace(real.config, weights=weights))


@pytest.fixture
def fake_file(tmp_path: Path) -> Path:
    path = tmp_path / "download" / "resnet50_notop.h5"
    path.parent.mkdir()
    path.write_bytes(FAKE_BYTES)
    return path


def test_import_installs_read_only(course: Course, fake_file: Path) -> None:
    """Does a file with the declared md5 land in the cache as 0444 in a 0755 folder?"""
    installed = import_weights(course, fake_file)
    assert installed == weights_path(course)
    assert installed.name == course.config.weights.file_name
    assert installed.read_bytes() == FAKE_BYTES
    assert stat.S_IMODE(installed.stat().st_mode) == 0o444
    assert stat.S_IMODE(installed.parent.stat().st_mode) == 0o755
    assert resolve_weights(course) == installed


def test_import_twice_replaces_the_read_only_file(course: Course, fake_file: Path) -> None:
    """Can an instructor re-import over an existing read-only file?"""
    import_weights(course, fake_file)
    assert import_weights(course, fake_file).read_bytes() == FAKE_BYTES


def test_import_refuses_a_wrong_file(course: Course, tmp_path: Path) -> None:
    """Is a file with another md5 refused before the cache changes?"""
    wrong = tmp_path / "wrong.h5"
    wrong.write_bytes(b"something else")
    with pytest.raises(WeightsError, match="md5") as info:
        import_weights(course, wrong)
    assert "notop" in (info.value.hint or "")
    assert not weights_path(course).exists()


def test_missing_weights_name_the_seeding_commands(course: Course) -> None:
    """Does resolve_weights say which command seeds an empty cache?"""
    with pytest.raises(WeightsError, match="not in the cache") as info:
        resolve_weights(course)
    assert "course weights import FILE" in (info.value.hint or "")
    assert "course weights fetch" in (info.value.hint or "")


def test_corrupt_weights_are_refused(course: Course, fake_file: Path) -> None:
    """Is a cached file whose bytes changed reported as corrupt, not used?"""
    installed = import_weights(course, fake_file)
    installed.chmod(0o644)
    installed.write_bytes(b"flipped")
    assert weights_status(course).md5_state == MD5_BAD
    with pytest.raises(WeightsError, match="corrupt") as info:
        resolve_weights(course)
    assert "course weights import FILE" in (info.value.hint or "")


def test_stand_in_mode_resolves_to_none(course: Course, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does $COURSE_WEIGHTS_MODE=stand-in skip the cache (and so never fail on it)?"""
    monkeypatch.setenv("COURSE_WEIGHTS_MODE", "stand-in")
    assert resolve_weights(course) is None
    monkeypatch.delenv("COURSE_WEIGHTS_MODE")
    config = replace(course.config, weights=replace(course.config.weights, mode="stand-in"))
    assert resolve_weights(Course(root=course.root, config=config)) is None


def test_env_overrides_the_cache_dir(
    course: Course, fake_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Does $COURSE_WEIGHTS_DIR win over weights.cache_dir?"""
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "elsewhere"))
    installed = import_weights(course, fake_file)
    assert installed.parent == tmp_path / "elsewhere"


def test_status_reports_each_state(course: Course, fake_file: Path) -> None:
    """Does status say missing, then ok with the read-only mode?"""
    assert weights_status(course).md5_state == MD5_MISSING
    import_weights(course, fake_file)
    status = weights_status(course)
    assert (status.md5_state, status.file_mode, status.size_bytes) == (
        MD5_OK, 0o444, len(FAKE_BYTES))


def test_fetch_verifies_what_it_downloads(course: Course) -> None:
    """Does fetch go through the same md5 check (with a fake opener, no network)?"""
    import io

    installed = fetch_weights(course, opener=lambda url: io.BytesIO(FAKE_BYTES))
    assert installed.read_bytes() == FAKE_BYTES
    with pytest.raises(WeightsError, match="md5"):
        fetch_weights(course, opener=lambda url: io.BytesIO(b"tampered"))
    # No temporary download is left behind next to the real file.
    assert sorted(p.name for p in installed.parent.iterdir()) == [installed.name]


def test_fetch_reports_a_network_failure(course: Course) -> None:
    """Is an unreachable URL a WeightsError that points at `import`?"""

    def offline(url: str) -> object:
        raise OSError("network is unreachable")

    with pytest.raises(WeightsError, match="could not download") as info:
        fetch_weights(course, opener=offline)
    assert "course weights import FILE" in (info.value.hint or "")


def test_cli_status_and_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Do `course weights status` and `course weights import` report through the CLI?"""
    monkeypatch.setenv("COURSE_ROOT", str(REPO))
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "cli-cache"))
    monkeypatch.delenv("COURSE_WEIGHTS_MODE", raising=False)
    assert main(["weights", "status"]) == 1
    assert "missing" in capsys.readouterr().out
    wrong = tmp_path / "wrong.h5"
    wrong.write_bytes(b"x")
    assert main(["weights", "import", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "md5" in err and "hint:" in err
