"""Batches: discovery, resume, isolation of a broken job, and both executors."""

import threading
from pathlib import Path

import pytest

from autograder.course.config import Course, load_course
from autograder.errors import SubmissionError
from autograder.facts import ExecutionResult, GradeResult, ItemResult
from autograder.grading.jobs import GradeJob, LocalExecutor, discover, run_batch
from autograder.grading.pipeline import GradingContext
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
