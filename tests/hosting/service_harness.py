"""A standalone grading service's world, shared by the fault tests
(``test_service_faults.py``) and the burst benchmark (``bench/hub_burst.py``): a course root
that borrows the repository's source, release, data and embeddings, with its own answer
keys, exchange and gradebook; real Unix students; submissions laid out as ``nbgrader
submit`` leaves them; the service's job store.

A plain module (not a conftest), so the benchmark can import it too."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "cnn_transfer"
NOTEBOOK = "cnn_transfer.ipynb"


def ensure_students(prefix: str, count: int) -> list[str]:
    """``count`` real Unix users to own submissions (system users: no home, no shell)."""
    names = [f"{prefix}{n:02d}" for n in range(count)]
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                                   "/usr/sbin/nologin", name], capture_output=True, text=True)
            if done.returncode != 0 and "already exists" not in done.stderr:
                raise RuntimeError(f"useradd {name} failed: {done.stderr.strip()}")
    return names


def make_exchange(base: Path, course_id: str) -> dict[str, Path]:
    """nbgrader's exchange for one course: inbound (students drop, cannot list) and feedback."""
    layout = {"inbound": base / course_id / "inbound", "feedback": base / course_id / "feedback"}
    for folder in layout.values():
        folder.mkdir(parents=True)
    layout["inbound"].chmod(0o2733)
    layout["feedback"].chmod(0o711)
    return layout


def service_course(base: Path, *, written_by: str) -> dict:
    """A course root under ``base`` (which other uids must be able to traverse: bubblewrap
    resolves bind sources as the sandbox uid) with a current reduced/stand-in answer key
    (the repository's, calibrated with one seed by the first world that finds none, as the
    hub's tests would; else, where it does not fit, one of its own). Returns ``root``,
    ``course``, ``env`` (for ``course`` subprocesses) and the exchange's ``inbound`` and
    ``feedback`` folders."""
    from autograder.course.config import load_course
    from autograder.grading.answer_key import key_path
    from autograder.grading.pipeline import make_context

    root = base / "course"
    root.mkdir(mode=0o755)
    for name in ("source", "release", "datasets"):
        (root / name).symlink_to(REPO / name)
    (root / ".course-state").mkdir(mode=0o755)
    (REPO / ".course-state" / "embeddings").mkdir(parents=True, exist_ok=True)
    (root / ".course-state" / "embeddings").symlink_to(REPO / ".course-state" / "embeddings")
    (root / "course_config.py").write_text((REPO / "course_config.py").read_text() + f"""
# Written by {written_by}: its own exchange, no instructor account
# (so `course grade` records in this root's gradebook.db), its own answer keys.
import dataclasses as _dc
COURSE = _dc.replace(
    COURSE,
    grading=_dc.replace(COURSE.grading, answer_key_dir={str(root / "keys")!r}),
    hub=_dc.replace(COURSE.hub, exchange_dir={str(base / "exchange")!r},
                    instructor="cfs-no-instructor"),
)
""")
    course = load_course(root)
    env = {**os.environ, "COURSE_ROOT": str(root), "COURSE_PROFILE": "reduced",
           "COURSE_WEIGHTS_MODE": "stand-in"}
    ctx = make_context(course, ASSIGNMENT, profile_name="reduced", out_dir=root / "out",
                       weights_mode="stand-in", need_key=False)
    repo_key = key_path(REPO, load_course(REPO).config.grading.answer_key_dir, ASSIGNMENT,
                        "reduced", "stand-in")
    if not repo_key.is_file():  # the first world of a session calibrates the hub tests' key
        print("calibrating the repository's answer key (one seed)…", flush=True)
        _calibrate_one_seed(REPO, {**env, "COURSE_ROOT": str(REPO)})
    if repo_key.is_file():  # the hub tests' key: reuse it when it fits this root
        ctx.key_file.parent.mkdir(parents=True, exist_ok=True)
        ctx.key_file.write_bytes(repo_key.read_bytes())
    if not ctx.key_is_current():
        print("calibrating an answer key (one seed)…", flush=True)
        _calibrate_one_seed(root, env)
    layout = make_exchange(base / "exchange", course.config.course_id)
    return {"root": root, "course": course, "env": env, "key_file": ctx.key_file, **layout}


def _calibrate_one_seed(root: Path, env: dict[str, str]) -> None:
    """`course calibrate` of the reduced/stand-in key in the course root ``root``, one seed."""
    done = subprocess.run([sys.prefix + "/bin/course", "calibrate", ASSIGNMENT, "--profile",
                           "reduced", "--weights-mode", "stand-in", "--seeds", "1"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError("calibration failed:\n" + done.stdout[-2000:] + done.stderr[-2000:])


def nbgrader_timestamp(t: float) -> str:
    """nbgrader's submission timestamp (sorts as text in time order)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d} UTC"


def submit(inbound: Path, student: str, notebook: nbformat.NotebookNode, *, at: float,
           assignment: str = ASSIGNMENT, notebook_name: str = NOTEBOOK) -> Path:
    """Lay a submission out as `nbgrader submit` does: the notebook, timestamp.txt, a
    128-hex secret, all the student's, and the folder opened to 0777 last."""
    stamp = nbgrader_timestamp(at)
    folder = inbound / f"{student}+{assignment}+{stamp}+{secrets.token_hex(4)}"
    folder.mkdir()
    nbformat.write(notebook, folder / notebook_name)
    (folder / "timestamp.txt").write_text(stamp)
    (folder / "submission_secret.txt").write_text(secrets.token_hex(64))
    entry = pwd.getpwnam(student)
    for path in (folder, *folder.iterdir()):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(folder, 0o777)
    return folder


def jobs_on_disk(store: Path) -> dict[str, dict]:
    """The service's job store as job id -> record (empty while it does not exist yet)."""
    try:
        return {raw["job_id"]: raw for raw in json.loads(store.read_text())}
    except (OSError, ValueError):
        return {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(setup: dict, state: Path, log: Path, *, listen: str = "127.0.0.1"
                  ) -> tuple[subprocess.Popen, str]:
    """The service as the hub starts it (its module, as root), standalone, listening on
    ``listen`` (its ``JUPYTERHUB_SERVICE_URL``'s host); waits for /health on loopback."""
    port = free_port()
    prefix = "/services/autograder/"
    env = {**setup["env"], "COURSE_HUB_STATE": str(state),
           "JUPYTERHUB_SERVICE_URL": f"http://{listen}:{port}", "JUPYTERHUB_SERVICE_PREFIX": prefix}
    with log.open("ab") as sink:
        process = subprocess.Popen([sys.executable, "-m", "autograder.hosting.service"],
                                   cwd=setup["root"], env=env, stdout=sink, stderr=subprocess.STDOUT)
    health = f"http://127.0.0.1:{port}{prefix}health"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return process, health
        except OSError:
            pass
        assert time.monotonic() < deadline, "the service did not answer /health"
        time.sleep(0.2)
