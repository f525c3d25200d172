"""Batches: discovery, resume, isolation of a broken job, and both executors."""

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from autograder.course.config import Course, load_course
from autograder.errors import SubmissionError
from autograder.facts import ExecutionResult, GradeResult, ItemResult
from autograder.grading import messages
from autograder.grading.jobs import GradeJob, LocalExecutor, discover, run_batch
from autograder.grading.pipeline import GradingContext, grade_submission
from autograder.grading.report import write_student_reports

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ctx(tmp_path) -> GradingContext:
    loaded = load_course(ROOT)
    course = Course(root=tmp_path, config=loaded.config)  # its own gradebook, not the repo's
    return GradingContext(course=course, assignment=course.config.assignments[0],
                          profile_name="reduced", weights_mode="stand-in", weights_file=None,
                          key_file=tmp_path / "key.json", grading_dir=tmp_path,
                          validation_dir=tmp_path, out_dir=tmp_path / "out")


def no_preparation(ctx: GradingContext) -> GradingContext:
    """These tests grade with stand-ins, which need no trusted embeddings."""
    return ctx


def fake_result(ctx: GradingContext, job: GradeJob, score: float = 1.0) -> GradeResult:
    ex = ExecutionResult(student=job.student, cells=(), kernel_status="finished", wall_s=0.1)
    items = (ItemResult("q1_conv_params", score, 2.0, False, "x"),)
    return GradeResult(job.student, ctx.assignment.assignment_id, score, 2.0, items, ex)


def writing_grader(calls: list[str]):
    """A stand-in for the pipeline that records its calls and writes results like the real one."""
    lock = threading.Lock()

    def grade(ctx, job, *, slot):
        with lock:
            calls.append(job.student)
        if job.student == "broken":
            raise RuntimeError("grader bug")
        result = fake_result(ctx, job)
        write_student_reports(result, ctx.out_dir / job.student, limits={})
        return result

    return grade


def make_tree(root: Path, students: list[str], nested: bool = False) -> Path:
    for s in students:
        folder = root / s / ("cnn_transfer" if nested else "")
        folder.mkdir(parents=True)
        (folder / "cnn_transfer.ipynb").write_text("{}")
    return root


def test_discover_reads_both_layouts(tmp_path):
    """Are a <student>/<nb> folder and nbgrader's submitted/<student>/<id>/<nb> both understood?"""
    flat = make_tree(tmp_path / "flat", ["bob", "alice"])
    nested = make_tree(tmp_path / "submitted", ["carol"], nested=True)
    jobs = discover([flat, nested], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer")
    assert [j.student for j in jobs] == ["alice", "bob", "carol"]
    single = discover([flat / "bob" / "cnn_transfer.ipynb"], notebook="cnn_transfer.ipynb",
                      assignment_id="cnn_transfer")
    assert single[0].student == "bob"


def test_discover_explains_an_empty_folder(tmp_path):
    """Is a folder without submissions a clear error, not an empty batch?"""
    (tmp_path / "empty").mkdir()
    with pytest.raises(SubmissionError, match="holds no <student>/cnn_transfer.ipynb"):
        discover([tmp_path / "empty"], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer")


def test_a_broken_job_never_stops_the_batch_and_is_retried(ctx, tmp_path):
    """Does a grader error in one job leave the others graded, and get retried on the next run?"""
    jobs = [GradeJob(s, tmp_path / f"{s}.ipynb") for s in ("alice", "broken", "carol")]
    calls: list[str] = []
    outcome = run_batch(ctx, jobs, prepare=no_preparation, grade=writing_grader(calls), executor=LocalExecutor(2))
    assert sorted(r.student for r in outcome.graded) == ["alice", "carol"]
    assert list(outcome.failed) == ["broken"] and "grader bug" in outcome.failed["broken"]
    assert outcome.grades_csv.read_text().count("\n") == 3  # header + two students

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        grade = gb.find_grade("q1_conv_params", "cnn_transfer", "cnn_transfer", "alice")
        assert grade.score == 1.0 and grade.max_score == 2.0
        assert {s.id for s in gb.students} == {"alice", "carol"}  # no row for the failed job

    calls.clear()
    again = run_batch(ctx, jobs, prepare=no_preparation, grade=writing_grader(calls), executor=LocalExecutor(2))
    assert calls == ["broken"]  # graded ones are skipped, the failed one is retried
    assert sorted(again.skipped) == ["alice", "carol"]

    calls.clear()
    run_batch(ctx, jobs, prepare=no_preparation, grade=writing_grader(calls), executor=LocalExecutor(2), force=True)
    assert sorted(calls) == ["alice", "broken", "carol"]


def test_each_concurrent_job_gets_its_own_slot(ctx, tmp_path):
    """Do jobs that run at the same time never share a sandbox slot (uid)?"""
    active: set[int] = set()
    clashes: list[int] = []
    barrier = threading.Barrier(2, timeout=5)
    lock = threading.Lock()

    def grade(ctx, job, *, slot):
        with lock:
            if slot in active:
                clashes.append(slot)
            active.add(slot)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        with lock:
            active.discard(slot)
        return fake_result(ctx, job)

    jobs = [GradeJob(f"s{i}", tmp_path / "x.ipynb") for i in range(4)]
    run_batch(ctx, jobs, prepare=no_preparation, grade=grade, executor=LocalExecutor(2))
    assert clashes == []


@pytest.mark.slow
def test_dask_executor_grades_a_batch(ctx, tmp_path):
    """Does the Dask executor (a local cluster) run the same pipeline function and return results?"""
    from autograder.grading.dask_executor import DaskExecutor

    jobs = [GradeJob(s, tmp_path / "x.ipynb") for s in ("alice", "bob")]
    executor = DaskExecutor(concurrency=2)
    try:
        outcome = run_batch(ctx, jobs, prepare=no_preparation, grade=fake_result_with_slot, executor=executor)
    finally:
        executor.shutdown()
    assert sorted(r.student for r in outcome.graded) == ["alice", "bob"]


def fake_result_with_slot(ctx, job, *, slot):
    assert slot in (0, 1)
    return fake_result(ctx, job)


def _notebook(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_discover_refuses_links_and_bad_names_per_student(tmp_path):
    """Does one odd entry (a symlink to the source notebook, a symlinked folder, a 65-character
    or unprintable name, a misnamed file) become that student's refused job, while everyone
    else in the batch is still found?"""
    source = _notebook(tmp_path / "instructor" / "cnn_transfer.ipynb")
    subs = tmp_path / "subs"
    _notebook(subs / "alice" / "cnn_transfer.ipynb")
    (subs / "linker").mkdir()
    (subs / "linker" / "cnn_transfer.ipynb").symlink_to(source)
    (subs / "folder-link").symlink_to(source.parent)
    long_name = "s" * 65
    _notebook(subs / long_name / "cnn_transfer.ipynb")
    _notebook(subs / "esc\x1b[2Jape" / "cnn_transfer.ipynb")
    _notebook(subs / "misnamed" / "Cnn_Transfer.ipynb")
    (subs / "not-submitted-yet" / "other_assignment").mkdir(parents=True)
    _notebook(subs / "=HYPERLINK(1)" / "cnn_transfer.ipynb")

    jobs = {j.student: j for j in discover([subs], notebook="cnn_transfer.ipynb",
                                           assignment_id="cnn_transfer")}
    assert not jobs["alice"].refused and not jobs[long_name].refused
    assert not jobs["=HYPERLINK(1)"].refused  # a valid id; grades.csv neutralises it
    assert jobs["linker"].refused == messages.SUBMISSION_SYMLINK.format(name="cnn_transfer.ipynb")
    assert jobs["folder-link"].refused == messages.SUBMISSION_SYMLINK.format(name="folder-link")
    assert jobs["misnamed"].refused == messages.SUBMISSION_NO_NOTEBOOK.format(
        notebook="cnn_transfer.ipynb")
    odd = [j for s, j in jobs.items() if s.startswith("unnamed-")]
    assert len(odd) == 1 and "\\x1b[2Jape" in odd[0].refused and "\x1b" not in odd[0].refused
    assert "not-submitted-yet" not in jobs


def test_a_refused_submission_gets_a_zero_with_its_reason(ctx, tmp_path):
    """Does a refused job (here: a symlink to the instructor's notebook) end with a results.json
    of zero that says why, without the target ever being read?"""
    target = _notebook(tmp_path / "secret" / "cnn_transfer.ipynb")
    link = tmp_path / "subs" / "mallory" / "cnn_transfer.ipynb"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    [job] = discover([tmp_path / "subs"], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer")
    result = grade_submission(ctx, job, slot=0)
    data = json.loads((ctx.out_dir / "mallory" / "results.json").read_text())
    assert result.score == 0 and data["score"] == 0
    assert data["extra_data"]["kernel_status"] == "refused"
    assert all(t["output"] == messages.SUBMISSION_UNREADABLE.format(
        reason=messages.SUBMISSION_SYMLINK.format(name="cnn_transfer.ipynb") + ".")
        for t in data["tests"])


def test_a_link_swapped_in_after_discovery_is_not_followed(ctx, tmp_path):
    """Is a notebook replaced by a symlink between discovery and grading refused too?"""
    target = _notebook(tmp_path / "secret" / "cnn_transfer.ipynb")
    notebook = _notebook(tmp_path / "subs" / "mallory" / "cnn_transfer.ipynb")
    [job] = discover([tmp_path / "subs"], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer")
    notebook.unlink()
    notebook.symlink_to(target)
    result = grade_submission(ctx, job, slot=0)
    assert result.execution.kernel_status == "refused"
    assert "symbolic link" in result.items[0].message


def test_a_grader_error_is_a_placeholder_the_next_run_retries(ctx, tmp_path, monkeypatch):
    """When checking fails inside the grader, does the student still get a results.json that
    says so, is nothing put in the gradebook, is it counted as failed, and re-run next time?"""
    from autograder.grading import pipeline

    def executed(ctx, sub, *, student, slot, job_dir, on_model=None):
        return ExecutionResult(student=student, cells=(), kernel_status="finished", wall_s=1.0)

    def broken_check(*args, **kwargs):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(pipeline, "execute_stage", executed)
    monkeypatch.setattr(pipeline, "check_and_score", broken_check)
    notebook = tmp_path / "subs" / "bob" / "cnn_transfer.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                    "cells": [{"cell_type": "code", "source": "x = 1",
                                               "metadata": {}, "outputs": [],
                                               "execution_count": None}]}))
    jobs = discover([tmp_path / "subs"], notebook="cnn_transfer.ipynb", assignment_id="cnn_transfer")
    outcome = run_batch(ctx, jobs, prepare=no_preparation, executor=LocalExecutor(1))
    assert list(outcome.failed) == ["bob"] and "UnicodeEncodeError" in outcome.failed["bob"]
    data = json.loads((ctx.out_dir / "bob" / "results.json").read_text())
    assert data["score"] == 0 and data["extra_data"]["grader_error"].startswith("UnicodeEncodeError")
    assert data["tests"][0]["output"] == messages.GRADER_ERROR.format(error="UnicodeEncodeError")
    assert not list((ctx.out_dir / "bob").glob("*.tmp"))
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        assert [s.id for s in gb.students] == []
    again = run_batch(ctx, jobs, prepare=no_preparation, executor=LocalExecutor(1))
    assert again.skipped == [] and list(again.failed) == ["bob"]  # retried, not skipped


def test_exit_status_counts_the_submissions_that_failed_to_grade():
    """Does `course grade` exit with how many submissions failed (0 when all got a result)?"""
    from autograder.commands.grade_cmd import failed_exit_status

    assert [failed_exit_status(n) for n in (0, 1, 3, 75, 500)] == [0, 1, 3, 64, 64]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_a_batch_closes_what_it_wrote(ctx, tmp_path):
    """Are the output folder and gradebook a batch created (wherever --out and --gradebook put
    them) and the demo's sample submissions closed to other users once it ends?"""
    import dataclasses

    demo = tmp_path / ".course-state" / "demo" / "submissions"
    demo.mkdir(parents=True, mode=0o755)
    (tmp_path / ".course-state" / "demo").chmod(0o755)
    (tmp_path / "elsewhere").mkdir()
    ctx = dataclasses.replace(ctx, out_dir=tmp_path / "elsewhere" / "out",
                              gradebook=tmp_path / "elsewhere" / "book.db")
    jobs = [GradeJob("alice", tmp_path / "alice.ipynb")]
    run_batch(ctx, jobs, prepare=no_preparation, grade=writing_grader([]), executor=LocalExecutor(1))
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in
             (ctx.out_dir, ctx.gradebook, tmp_path / ".course-state" / "demo")}
    assert modes == {ctx.out_dir: 0o700, ctx.gradebook: 0o600,
                     tmp_path / ".course-state" / "demo": 0o700}
    assert all(p.stat().st_uid == 0 for p in modes)


def test_an_oversized_notebook_is_refused_before_it_is_read(tmp_path):
    """Is a submission over MAX_NOTEBOOK_BYTES a clear SubmissionError that says how
    to make it smaller (a sparse file: nothing big is written to disk)?"""
    from autograder.grading.submission import MAX_NOTEBOOK_BYTES
    from autograder.grading.pipeline import take_submission

    big = tmp_path / "cnn_transfer.ipynb"
    with big.open("wb") as f:
        f.truncate(MAX_NOTEBOOK_BYTES + 1)
    with pytest.raises(SubmissionError) as info:
        take_submission(big, tmp_path / "copy.ipynb")
    assert info.value.message == (
        f"cnn_transfer.ipynb is over the {MAX_NOTEBOOK_BYTES:,} bytes allowed; clear the outputs "
        "(Edit > Clear All Outputs) and submit again")
    assert not (tmp_path / "copy.ipynb").exists()


class _RecordingClient:
    """Stands in for distributed's Client: records what a job asked the scheduler for."""

    def __init__(self, answers: dict | None = None) -> None:
        self.asked: list[dict] = []
        self.answers = answers or {}
        """worker address -> what ``Client.run`` of :func:`remote.worker_identity` returns"""

    def wait_for_workers(self, n, timeout=None) -> None:
        if len(self.answers) < n:
            raise TimeoutError(f"only {len(self.answers)} workers")

    def run(self, fn, *args, on_error="raise", **kwargs):
        return dict(self.answers)

    def scheduler_info(self):
        return {"workers": {addr: {"name": f"w{i}"} for i, addr in enumerate(sorted(self.answers), 1)}}

    def submit(self, fn, *args, **kwargs):
        import concurrent.futures as cf

        self.asked.append({"args": args, **kwargs})
        future = cf.Future()
        future.set_exception(RuntimeError("not run"))
        return future


@pytest.mark.parametrize(("course_gpu", "assignment_gpu", "gpu"), [
    (False, None, False), (True, None, True),  # the assignment follows the course
    (True, False, False), (False, True, True),  # or says otherwise
])
def test_a_dask_job_travels_as_data_and_asks_for_a_gpu_only_when_its_assignment_does(
        ctx, tmp_path, course_gpu, assignment_gpu, gpu):
    """Does a job sent to Dask carry the notebook's bytes and the material's hashes (no path
    the worker would have to share), and ask for the worker resource GPU=1 exactly when its
    assignment grades on a GPU: ``Assignment.gpu``, else the course's ``grading.gpu``?"""
    import dataclasses

    from autograder.grading.remote import RemoteTask, identity

    config = ctx.course.config
    course = dataclasses.replace(ctx.course, config=dataclasses.replace(
        config, grading=dataclasses.replace(config.grading, gpu=course_gpu)))
    ctx = dataclasses.replace(ctx, course=course, assignment=dataclasses.replace(
        ctx.assignment, gpu=assignment_gpu))
    notebook = _notebook(tmp_path / "subs" / "ann" / "cnn_transfer.ipynb")
    executor = _executor({"tcp://10.0.0.5:40000": identity(ctx)})  # the workers' copy
    executor.submit_job(ctx, GradeJob(student="ann", notebook=notebook), grade_submission)
    (asked,) = executor._client.asked
    task = next(a for a in asked["args"] if isinstance(a, RemoteTask))
    assert task.notebook == notebook.read_bytes() and task.student == "ann"
    assert set(task.identity) >= {"answer key", "release/cnn_transfer/cnn_transfer.ipynb"}
    assert asked["resources"] == ({"GPU": 1} if gpu else None)


def _executor(answers: dict):
    from autograder.grading.dask_executor import DaskExecutor

    executor = DaskExecutor.__new__(DaskExecutor)  # no cluster: only what would be sent
    executor._client, executor._concurrency, executor._identity = _RecordingClient(answers), 2, {}
    executor._address = "tls://scheduler:8786"
    return executor


def _material(ctx: GradingContext) -> GradingContext:
    """``ctx`` over a course copy that holds every file a grade depends on."""
    import dataclasses

    release = ctx.course.release_dir(ctx.assignment.assignment_id) / ctx.assignment.notebook
    release.parent.mkdir(parents=True)
    release.write_text('{"cells": []}')
    ctx.key_file.write_text('{"answers": {}}')
    weights = ctx.course.root / "weights.h5"
    weights.write_bytes(b"weights")
    return dataclasses.replace(ctx, weights_file=weights)


def test_the_workers_agree_on_the_secret_files_and_the_client_checks_what_students_see(ctx, tmp_path):
    """The client of a remote cluster holds no answer key and no rubric: does it send the
    hashes the workers agree on (secret files included), and refuse, naming the file and
    the workers, when their copies differ, when a public file differs from the client's
    (what students were given) or when a worker cannot grade the setting at all?"""
    import dataclasses

    from autograder.errors import ConfigError
    from autograder.grading.remote import WorkerDataError, agreed_identity, identity, is_secret

    ctx = _material(ctx)
    theirs = identity(ctx)
    secret = sorted(name for name in theirs if is_secret(name))
    assert "answer key" in secret and any(n.startswith("rubric/") for n in secret)
    release = f"release/{ctx.assignment.assignment_id}/{ctx.assignment.notebook}"
    assert {release, "weights"} <= set(identity(ctx, public_only=True)) and not (
        set(secret) & set(identity(ctx, public_only=True)))
    # The client without secrets: its own key is gone; the workers' identity still names it.
    client = dataclasses.replace(ctx, key_file=tmp_path / "nowhere" / "key.json")
    assert agreed_identity(client, {"w1": theirs, "w2": dict(theirs)}) == theirs

    rubric = next(n for n in secret if n.startswith("rubric/"))
    with pytest.raises(WorkerDataError) as info:
        agreed_identity(client, {"w1": theirs, "w2": theirs, "w3": {**theirs, rubric: "0" * 64}})
    assert f"{rubric} differs between the workers' copies (one copy on w1, w2; one copy on w3)" \
        in info.value.message

    with pytest.raises(WorkerDataError) as info:  # the workers grade a release students never got
        agreed_identity(client, {"w1": {**theirs, release: "1" * 64}})
    assert f"{release} differs between the workers and this client" in info.value.message

    stale = ConfigError("a stale answer key for cnn_transfer", hint="run `course calibrate cnn_transfer`")
    with pytest.raises(WorkerDataError) as info:
        agreed_identity(client, {"w1": theirs, "w2": stale})
    assert "worker w2 cannot grade it: a stale answer key for cnn_transfer" in info.value.message
    assert "w1" not in info.value.message  # the worker that can grade is not blamed


def test_a_batch_over_differing_workers_is_refused_whole_and_a_cluster_without_workers_is_unavailable(
        ctx, tmp_path):
    """Does every job of a batch get the same refusal (the workers are asked once), with
    nothing sent to the scheduler, and does a cluster with no worker make the batch
    unavailable (exit 75: the hub's service retries) rather than fail the students?"""
    from autograder.errors import GraderUnavailable
    from autograder.grading.remote import WorkerDataError, identity

    ctx = _material(ctx)
    theirs = identity(ctx)
    executor = _executor({"tcp://a:1": theirs, "tcp://b:2": {**theirs, "answer key": "2" * 64}})
    asked = []
    executor._client.run = lambda *a, **k: asked.append(a) or dict(executor._client.answers)
    for student in ("ann", "bob"):
        future = executor.submit_job(ctx, GradeJob(student=student, notebook=_notebook(
            tmp_path / "subs" / student / "cnn_transfer.ipynb")), grade_submission)
        with pytest.raises(WorkerDataError, match="answer key differs between the workers' copies"):
            future.result()
    assert len(asked) == 1 and executor._client.asked == []

    ann = GradeJob(student="ann", notebook=tmp_path / "subs" / "ann" / "cnn_transfer.ipynb")
    empty = _executor({})
    with pytest.raises(GraderUnavailable, match="no grading worker answered"):
        empty.submit_job(ctx, ann, grade_submission).result()


def test_a_worker_lost_while_asked_has_no_say(ctx, tmp_path):
    """A worker killed or retired while the batch asks for the copies' hashes: do the others
    decide (its lost connection is no refusal of the batch), and does a cluster whose every
    worker went away make the batch unavailable (the service retries), not failed?"""
    from distributed.comm.core import CommClosedError

    from autograder.errors import GraderUnavailable
    from autograder.grading.remote import RemoteTask, identity

    ctx = _material(ctx)
    ann = GradeJob(student="ann", notebook=_notebook(tmp_path / "subs" / "ann" / "cnn_transfer.ipynb"))
    lost = CommClosedError("in <TLS (closed)>: Stream is closed")
    executor = _executor({"tcp://a:1": identity(ctx), "tcp://b:2": lost})
    executor.submit_job(ctx, ann, grade_submission)
    (asked,) = executor._client.asked
    assert next(a for a in asked["args"] if isinstance(a, RemoteTask)).identity == identity(ctx)

    gone = _executor({"tcp://a:1": lost, "tcp://b:2": TimeoutError("no answer")})
    with pytest.raises(GraderUnavailable, match="no grading worker is left"):
        gone.submit_job(ctx, ann, grade_submission).result()
    assert gone._client.asked == []


class _CheckerThatCrashed:
    """A started checker that ended without a report, killed by a signal (the real detection
    of how a checker ended: tests/grading/test_check.py)."""

    def __init__(self):
        self.log = ""

    def finish(self, facts_dir, *, models=None, timeout_s=None):
        return {}

    def stopped(self):
        from autograder.grading.check import Stopped

        return Stopped("crash", "signal SIGKILL")

    def add_to_log(self, text):
        self.log += text


def _executed_with_a_model(work: Path) -> ExecutionResult:
    facts = work / "job" / "out"
    (facts / "models").mkdir(parents=True)
    (facts / "models" / "cnn_model.keras").write_bytes(b"PK\x03\x04")
    return ExecutionResult(student="bob", cells=(), kernel_status="finished", wall_s=1.0,
                           answers={"conv1_params": 416}, facts_dir=facts,
                           models={"cnn_model": facts / "models" / "cnn_model.keras"})


@pytest.mark.parametrize("again", ["judged", "crashed"])
def test_a_crashed_checker_is_run_once_more_before_the_models_are_blamed(
        ctx, tmp_path, monkeypatch, again):
    """A checker killed by a signal may have met the host's OOM killer, not a crafted model:
    is the submission judged once more with its models, and only when that crashes too judged
    without them, each model item failing with the crash named?"""
    from autograder.grading import check, pipeline
    from autograder.grading.check import Stopped

    records = {"items": {name: {"outcome": "passed", "message": "Correct."}
                         for name in ctx.assignment.points}, "summaries": {}}
    judged: list[Path] = []
    without: list[dict] = []

    def judge(inputs, *, rubric_dir, timeout_s=None, limits=None):
        if inputs.facts_dir.name == "facts-without-models":
            without.append(json.loads((inputs.facts_dir / "answers.json").read_text()))
            assert not list((inputs.facts_dir / "models").iterdir())
            return records, "without models", None
        judged.append(inputs.facts_dir)
        if again == "judged":
            return records, "second run", None
        return {}, "second run", Stopped("crash", "signal SIGSEGV")

    monkeypatch.setattr(check, "judge", judge)
    work = tmp_path / "work"
    execution = _executed_with_a_model(work)
    checker = _CheckerThatCrashed()
    job = GradeJob(student="bob", notebook=tmp_path / "bob.ipynb")
    result = pipeline.check_and_score(ctx, job, execution, cell_sources=[], work=work,
                                      student_dir=tmp_path / "out" / "bob", checker=checker)
    assert judged == [execution.facts_dir]  # once more, on the same facts
    assert "judged once more" in checker.log
    if again == "judged":
        assert without == [] and result.score == result.max_score
    else:
        [facts] = without
        assert facts["answers"] == {"conv1_params": 416}
        assert "it crashed: signal SIGSEGV" in facts["errors"]["cnn_model"]
        assert "judged again without the models ['cnn_model']" in checker.log
