"""Grading on a real Dask cluster on loopback: one scheduler, two workers, each with its own
copy of the course and no disk shared with the client but the kit itself.

`course grade` (the same command the hub's service runs) sends 20 param_counting
submissions to the scheduler; one worker is killed (with its nanny, -9) while it grades;
every submission still ends with exactly one results.json, one gradebook entry and one
grades.csv row, each with the score its answers earn. A worker whose copy lacks the answer
key refuses to start, saying which file and what to do. The client holds what the hub's
service holds in production, no source notebook and no answer key; the workers agree on
the secret files, and a batch over workers whose rubrics differ is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "hosting"))

from service_harness import ensure_students, jobs_on_disk, make_exchange, start_service, submit  # noqa: E402

from dask_harness import (AID, course, course_copy, env_of, free_port, scheduler,  # noqa: E402
                          submissions, wait_for_workers, worker, worker_copy)

from autograder.course.config import load_course  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.sandbox,
              pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")]


@pytest.fixture(scope="module")
def cluster():
    base = Path(tempfile.mkdtemp(prefix="course-dask-"))
    base.chmod(0o755)
    # Staff calibrate on their own copy; the client (`course grade`, the hub's service) holds
    # only what students see, as in production: no source notebook, no answer key.
    staff = course_copy(base / "staff")
    done = course(staff, "calibrate", AID, "--profile", "reduced", "--seeds", "1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    client = course_copy(base / "client", secrets=False)
    # The production shape: mutual TLS with the course's own CA (`course dask certs`).
    tls = base / "tls"
    made = course(staff, "dask", "certs", str(tls))
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    with (client / "course_config.py").open("a") as cfg:
        cfg.write(f"""
# grading through the loopback scheduler; the service's own exchange, no instructor account
import dataclasses as _dc
COURSE = _dc.replace(
    COURSE, grading=_dc.replace(COURSE.grading, executor="dask", dask_scheduler={address!r},
                                dask_tls_dir={str(tls)!r}),
    hub=_dc.replace(COURSE.hub, exchange_dir={str(base / "exchange")!r}, instructor="dask-no-instructor"))
""")
    roots = [worker_copy({"base": base, "staff": staff}, name) for name in ("w1", "w2")]
    assert not (client / "source").exists() and not (client / "answer_keys").exists()
    world = {"base": base, "staff": staff, "client": client, "address": address, "port": port, "roots": roots,
             "tls": tls, "scheduler": scheduler(port, base / "scheduler.log", tls=tls),
             "workers": {r.name: worker(address, r, r.name, base / f"{r.name}.log", tls=tls)
                         for r in roots}}
    try:
        wait_for_workers(address, 2, tls=tls)
        yield world
    finally:
        for proc in [*world["workers"].values(), world["scheduler"]]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def _kill_when_grading(worker: subprocess.Popen, results: Path, *, after: int) -> threading.Thread:
    """Kill ``worker``'s whole process group once ``after`` results exist and it is running a
    sandboxed kernel (so it dies mid-grade)."""
    def watch() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            graded = len(list(results.glob("*/results.json"))) if results.is_dir() else 0
            busy = subprocess.run(["pgrep", "-g", str(worker.pid), "bwrap"],
                                  capture_output=True).returncode == 0
            if graded >= after and busy:
                os.killpg(worker.pid, signal.SIGKILL)
                return
            time.sleep(0.2)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_batch_survives_a_killed_worker_and_is_graded_exactly_once(cluster):
    """Are 20 submissions sent to the scheduler all graded once, with the scores their answers
    earn, although one of the two workers is killed mid-grade?"""
    from nbgrader.api import Gradebook

    client = cluster["client"]
    plan = submissions(cluster["base"] / "submissions")
    out = cluster["base"] / "out"
    killer = _kill_when_grading(cluster["workers"]["w1"], out, after=4)
    done = course(client, "grade", AID, str(cluster["base"] / "submissions"), "--out", str(out),
                   "--profile", "reduced", timeout_s=1800)
    killer.join(timeout=5)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert cluster["workers"]["w1"].poll() is not None, "the worker was never killed mid-grade"
    points = load_course(client).config.assignment(AID).points
    total = sum(points.values())
    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}
    assert set(results) == set(plan)
    for student, lost in plan.items():
        got = results[student]
        assert got["score"] == total - sum(points[i] for i in lost), (student, got["score"])
        assert {t["name"] for t in got["tests"] if t["score"] < t["max_score"]} == lost, student
        assert got["extra_data"]["sandboxed"] is True
        assert (out / student / "feedback.html").is_file()
    rows = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert sorted(r["student"] for r in rows) == sorted(plan)
    with Gradebook(f"sqlite:///{client / 'gradebook.db'}") as gb:
        subs = gb.find_assignment(AID).submissions
        assert sorted(s.student.id for s in subs) == sorted(plan)
        assert {s.student.id: s.score for s in subs} == {s: r["score"] for s, r in results.items()}
    # the workers wrote nothing into their own course copies' output folders: data came back
    for root in cluster["roots"]:
        assert not (root / "autograded").exists() and not (root / "gradebook.db").exists()


def test_a_worker_without_the_answer_key_refuses_to_start(cluster):
    """Does a worker whose course copy lacks the answer key stop before joining, naming the
    missing key and the command that makes it?"""
    root = course_copy(cluster["base"] / "w-bad")
    log = cluster["base"] / "w-bad.log"
    proc = worker(cluster["address"], root, "w-bad", log, tls=cluster["tls"])
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    said = log.read_text()
    from autograder.grading.dask_worker import REFUSED_EXIT

    assert proc.returncode == REFUSED_EXIT, said[-2000:]
    assert "no answer key for param_counting" in said and "course calibrate param_counting" in said, \
        said[-2000:]


def _refused(address: str, security) -> str:
    """How a client with ``security`` fails to reach ``address`` (an assertion if it gets in)."""
    from distributed import Client

    try:
        with Client(address, timeout="8s", security=security):
            pass
    except (OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError(f"a client with {security!r} reached the scheduler at {address}")


def _raw_tls(port: int, cert_dir: Path | None) -> str:
    """Speak TLS to the scheduler as a rogue would: trusting any server, presenting the
    certificate in ``cert_dir`` (none when None). What came of it."""
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the rogue does not care who the server is
    if cert_dir is not None:
        ctx.load_cert_chain(cert_dir / "node.pem", cert_dir / "node-key.pem")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw) as conn:
                conn.settimeout(3)  # a refused peer hears so at once; an accepted one waits
                return "served" if conn.recv(1) else "closed"
        except TimeoutError:
            return "open"
        except (ssl.SSLError, ConnectionError) as exc:
            return f"refused: {exc}"


def test_only_holders_of_the_course_certificate_reach_the_scheduler(cluster):
    """Dask runs whatever a client sends on workers that are root next to the hidden split,
    and takes any process that says it is a worker, whose results become grades. Does the
    scheduler refuse a client without a certificate, over plain TCP, or with one from another
    CA, and keep a worker with another CA's certificate out, while the course's own client
    still gets in?"""
    from distributed import Client

    from autograder.grading import dask_tls

    address, port, base = cluster["address"], cluster["port"], cluster["base"]
    other = base / "other-ca"
    dask_tls.make_certs(other)
    own = dask_tls.client_security(cluster["tls"])
    with Client(address, timeout="30s", security=own) as c:
        before = set(c.scheduler_info()["workers"])
    assert before, "no worker is connected"
    # The scheduler itself refuses a peer without a certificate of the course's CA.
    for cert_dir in (None, other):
        said = _raw_tls(port, cert_dir)
        assert said == "closed" or said.startswith("refused: "), (cert_dir, said)
    assert _raw_tls(port, cluster["tls"]) in ("open", "served")  # the control: the course's own
    _refused(f"tcp://127.0.0.1:{port}", None)  # plain TCP to the TLS port
    from autograder.errors import GraderUnavailable
    from autograder.grading.dask_executor import DaskExecutor

    with pytest.raises(GraderUnavailable) as info:  # what `course grade` says then
        DaskExecutor(concurrency=1, address=f"tcp://127.0.0.1:{port}")
    assert "refuses a client without the course's certificate (grading.dask_tls_dir)" in \
        info.value.hint
    _refused(address, dask_tls.client_security(other))  # a certificate the course's CA did not sign
    log = base / "rogue.log"
    with log.open("w") as sink:  # the child keeps its own copy of the descriptor
        rogue = subprocess.Popen([sys.prefix + "/bin/dask", "worker", address, "--nthreads", "1",
                                  "--name", "rogue", "--no-dashboard", *dask_tls.cli_args(other)],
                                 stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "certificate" not in log.read_text():
            time.sleep(0.5)
        with Client(address, timeout="30s", security=own) as c:
            after = c.scheduler_info()["workers"]
    finally:
        os.killpg(rogue.pid, signal.SIGKILL)
        rogue.wait()
    assert set(after) == before and not any(w.get("name") == "rogue" for w in after.values())
    assert "certificate" in log.read_text(), log.read_text()[-2000:]


def test_a_scheduler_lost_mid_batch_makes_course_grade_say_try_again(cluster):
    """When the scheduler dies while a worker grades, does `course grade` exit 75 (the hub's
    service then keeps the job queued), name the lost scheduler, and record nothing for the
    submissions it held, rather than hang or hand out zeros?"""
    from autograder.errors import GraderUnavailable

    alive = [r for r in cluster["roots"] if cluster["workers"][r.name].poll() is None]
    assert alive, "no worker is left"
    batch = cluster["base"] / "lost-batch"
    submissions(batch, count=3)
    out = cluster["base"] / "out-lost"
    with (cluster["base"] / "lost-grade.log").open("w") as sink:
        grading = subprocess.Popen([sys.prefix + "/bin/course", "grade", AID, str(batch), "--out", str(out),
                                    "--profile", "reduced"], cwd=cluster["client"], env=env_of(cluster["client"]),
                                   stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    busy = cluster["workers"][alive[-1].name]
    deadline = time.monotonic() + 300
    while subprocess.run(["pgrep", "-g", str(busy.pid), "bwrap"], capture_output=True).returncode != 0:
        assert grading.poll() is None and time.monotonic() < deadline, "no worker started grading"
        time.sleep(0.2)
    os.killpg(cluster["scheduler"].pid, signal.SIGKILL)
    cluster["scheduler"].wait()
    try:
        code = grading.wait(timeout=180)
    finally:
        if grading.poll() is None:
            os.killpg(grading.pid, signal.SIGKILL)
    said = " ".join((cluster["base"] / "lost-grade.log").read_text().split())
    assert code == GraderUnavailable.EXIT_STATUS, said[-3000:]
    assert "scheduler" in said and "dropped" in said, said[-3000:]
    graded = {p.parent.name for p in out.glob("*/results.json")}
    assert len(graded) < 3  # what the scheduler held was not graded, and not given a zero
    for student in graded:
        assert json.loads((out / student / "results.json").read_text())["extra_data"]["sandboxed"] is True


def test_the_hub_service_grades_through_the_scheduler_and_waits_while_it_is_away(cluster):
    """With the scheduler down, does the service keep a submission queued (not failed),
    saying it waits for the grading cluster, and grade it through the scheduler, with the
    score its answers earn, once a scheduler and a worker are back?"""
    base, client = cluster["base"], cluster["client"]
    if cluster["scheduler"].poll() is None:  # the test before may have killed it already
        os.killpg(cluster["scheduler"].pid, signal.SIGKILL)
        cluster["scheduler"].wait()
    layout = make_exchange(base / "exchange", load_course(client).config.course_id)
    students = ensure_students("dasksvc", 2)
    plan = submissions(base / "service-submissions", count=4)
    state = base / "service-state"
    setup = {"root": client, "env": env_of(client)}
    service, _ = start_service(setup, state, base / "service.log")
    try:
        now = time.time()
        chosen = {"s00": students[0], "s03": students[1]}  # the reference; two answers broken
        for n, (sample, student) in enumerate(chosen.items()):
            nb = nbformat.read(base / "service-submissions" / sample / f"{AID}.ipynb", as_version=4)
            submit(layout["inbound"], student, nb, at=now - 60 + n, assignment=AID,
                   notebook_name=f"{AID}.ipynb")
        store = state / "service" / "jobs.json"
        _wait(lambda: any("grading cluster" in j["message"] and j["state"] == "queued"
                          for j in jobs_on_disk(store).values()), "a job waiting for the cluster", service)
        assert not any(j["state"] == "failed" for j in jobs_on_disk(store).values())
        cluster["scheduler"] = scheduler(cluster["port"], base / "scheduler.log", tls=cluster["tls"])
        root = worker_copy(cluster, "w3")
        cluster["roots"].append(root)
        cluster["workers"]["w3"] = worker(cluster["address"], root, "w3", base / "w3.log",
                                          tls=cluster["tls"])
        _wait(lambda: sum(j["state"] == "done" for j in jobs_on_disk(store).values()) == 2,
              "both jobs done", service, timeout_s=600)
        points = load_course(client).config.assignment(AID).points
        by_student = {j["student"]: j for j in jobs_on_disk(store).values()}
        for sample, student in chosen.items():
            lost = sum(points[i] for i in plan[sample])
            assert by_student[student]["score"] == sum(points.values()) - lost, by_student[student]
            assert by_student[student]["feedback_published"] is True
    finally:
        service.kill()
        service.wait()


def _wait(condition, what: str, service: subprocess.Popen, *, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert service.poll() is None, "the service died"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_workers_whose_rubrics_differ_refuse_the_batch_naming_the_file(cluster):
    """The client holds no rubric to compare with. When one worker's rubric is not the
    others', is the batch refused before anything is graded, naming the file and the
    workers on each side, rather than graded half against each rubric?"""
    alive = [r for r in cluster["roots"] if cluster["workers"][r.name].poll() is None]
    assert cluster["scheduler"].poll() is None, "the scheduler is down"
    while len(alive) < 2:  # the tests before may have killed some
        root = worker_copy(cluster, f"w{len(cluster['roots']) + 1}")
        cluster["roots"].append(root)
        cluster["workers"][root.name] = worker(cluster["address"], root, root.name,
                                               cluster["base"] / f"{root.name}.log", tls=cluster["tls"])
        alive.append(root)
    wait_for_workers(cluster["address"], len(alive), tls=cluster["tls"])
    changed = alive[-1]
    own = changed / "autograder" / "rubric" / AID  # a course root's own rubric wins over the kit's
    shutil.copytree(REPO / "autograder" / "rubric" / AID, own)
    with (own / "test_counts.py").open("a") as f:
        f.write("\n# changed on this worker only\n")
    one = cluster["base"] / "one"
    submissions(cluster["base"] / "all-for-one", count=1)
    shutil.copytree(cluster["base"] / "all-for-one" / "s00", one / "s00")
    out = cluster["base"] / "out-one"
    done = course(cluster["client"], "grade", AID, str(one), "--out", str(out), "--profile", "reduced",
                   timeout_s=600)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, said[-3000:]
    others = ", ".join(sorted(r.name for r in alive[:-1]))
    assert (f"rubric/test_counts.py differs between the workers' copies (one copy on {others}; "
            f"one copy on {changed.name})") in said, said[-3000:]
    assert not (out / "s00" / "results.json").exists()
