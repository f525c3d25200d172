"""Grading on Dask distributed: a local cluster by default, a remote scheduler by address.

Each worker runs one submission at a time (``--nthreads 1``). A submission goes to a
worker as data (:mod:`autograder.grading.remote`): its bytes and the identity of the course
material, never a path; the worker grades against its own copy of the course and returns
the output folder's files, which the client alone writes. So nothing but the read-only
course material has to be on the worker's disk, and a worker with a different copy
refuses the task, naming the files.

Slots: the worker's name only suggests a slot; the job takes whichever slot of its host is
free (``slots.free_slot``: one flock per slot uid), so two workers on one host never share
a uid whatever they are called. A worker killed mid-grade loses its task to the scheduler,
which runs it on another worker; the client writes each submission's files once, when its
future completes. An assignment that grades on a GPU (``Assignment.gpu``, else
``grading.gpu``) asks for the worker resource ``GPU=1`` (``dask worker --resources GPU=1``);
other submissions ask for nothing.
"""

from __future__ import annotations

import concurrent.futures as cf
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autograder.errors import ConfigError, GraderUnavailable, SubmissionError
from autograder.grading import dask_tls


WORKER_WAIT_S = 60
"""How long a batch waits for a first worker (a cluster scaled to none starts one) before it
says the cluster is unavailable (``course grade`` exits 75; the hub's service retries)."""

GPU_RESOURCE = {"GPU": 1}
"""The Dask worker resource a submission asks for when its assignment grades on a GPU; GPU workers
advertise it (``dask worker --resources GPU=1``, hub/grading-cluster.yaml)."""


def _with_worker_slot(fn: Callable[..., Any], concurrency: int, *args: Any, **kwargs: Any) -> Any:
    from distributed import get_worker

    name = get_worker().name
    slot = name if isinstance(name, int) else abs(hash(name)) % concurrency
    return fn(*args, slot=int(slot) % concurrency, **kwargs)


class DaskExecutor:
    grades_as_data = True
    """Workers build their own context (the trusted embeddings included) from their own copy:
    the client prepares nothing for them (``jobs.run_batch``)."""

    def __init__(self, *, concurrency: int, address: str = "", security: Any = None) -> None:
        """``security``: the client's TLS (:func:`dask_tls.client_security`) for a scheduler
        that requires it; the address must then be ``tls://``."""
        from distributed import Client, LocalCluster

        self._cluster = None
        self._address = address
        if address:
            problem = dask_tls.scheme_problem(address, security is not None)
            if problem:  # before any connection: no notebook leaves in clear text
                field, what, fix = problem
                raise ConfigError(f"{field}: {what}", hint=fix)
            try:
                self._client = Client(address, timeout="30s", security=security)
            except OSError as exc:  # includes TimeoutError: nothing answers there
                tls = ("; a scheduler that requires TLS refuses a client without the course's "
                       "certificate (grading.dask_tls_dir)") if security is None else ""
                raise GraderUnavailable(f"no Dask scheduler answers at {address} ({exc})",
                                        hint="start the scheduler (`dask scheduler`) and a worker, "
                                             f"or set grading.executor = \"local\"{tls}") from None
        else:
            # Throwaway certificates: the loopback port is open to every local user otherwise,
            # and its workers run as root.
            self._cluster = LocalCluster(n_workers=concurrency, threads_per_worker=1,
                                         processes=True, dashboard_address=None, security=True)
            self._client = Client(self._cluster)
        self._concurrency = concurrency
        self._identity: dict[int, dict[str, str] | Exception] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        """Run ``fn(*args, slot=...)`` on a worker (which then shares the client's disk)."""
        return self._relay(self._client.submit(_with_worker_slot, fn, self._concurrency, *args,
                                               pure=False, **kwargs), lambda r: r)

    def submit_job(self, ctx: Any, job: Any, grade: Callable[..., Any]) -> cf.Future:
        """Grade ``job`` on a worker as data (``grade`` is the pipeline's own function); a job
        that cannot be read or is refused gets its zero here, with ``grade``."""
        from autograder.grading import remote
        from autograder.grading.pipeline import grade_submission, take_submission

        if grade is not grade_submission:  # a stand-in grader (tests): the shared-disk way
            return self.submit(grade, ctx, job)
        if job.refused:
            return self._here(grade, ctx, job)
        with tempfile.TemporaryDirectory(prefix="course-send-") as tmp:
            try:
                data = take_submission(job.notebook, Path(tmp) / "submission.ipynb").read_bytes()
            except SubmissionError:  # the pipeline says why, as for a local job
                return self._here(grade, ctx, job)
        ident = self._batch_identity(ctx)
        if isinstance(ident, Exception):  # this job's outcome, not the batch's end
            failed: cf.Future = cf.Future()
            failed.set_exception(ident)
            return failed
        task = remote.make_task(ctx, job, data, ident)
        gpu = ctx.assignment.grades_on_gpu(ctx.course.config.grading)
        resources = GPU_RESOURCE if gpu else None
        future = self._client.submit(_with_worker_slot, remote.grade_task, self._concurrency, task,
                                     pure=False, resources=resources, key=f"grade-{uuid.uuid4().hex}")
        return self._relay(future, lambda outcome: remote.write_outcome(ctx, outcome))

    def _batch_identity(self, ctx: Any) -> dict[str, str] | Exception:
        """What every task of this batch must be graded against, as the workers agree on it
        (:func:`remote.agreed_identity`), asked once per batch; or the refusal, kept, so every
        job of the batch gets the same reason."""
        from autograder.grading import remote

        if id(ctx) not in self._identity:
            try:
                self._identity[id(ctx)] = remote.agreed_identity(ctx, self._ask_workers(ctx))
            except (remote.WorkerDataError, GraderUnavailable) as exc:
                self._identity[id(ctx)] = exc
        return self._identity[id(ctx)]

    def _ask_workers(self, ctx: Any) -> dict[str, Any]:
        """Every worker's :func:`remote.worker_identity` (or its error), by worker name."""
        from distributed.comm.core import CommClosedError

        from autograder.grading import remote

        where = self._address or "the local cluster"
        try:
            self._client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            answers = self._client.run(remote.worker_identity, ctx.assignment.assignment_id,
                                       ctx.profile_name, ctx.weights_mode, str(ctx.course.root),
                                       on_error="return")
            workers = self._client.scheduler_info().get("workers", {})
        except (OSError, TimeoutError) as exc:  # no worker joined, or the scheduler went away
            raise GraderUnavailable(
                f"no grading worker answered through the Dask scheduler at {where} ({exc})",
                hint="start a worker (`dask worker`, hub/grading-cluster.yaml); a re-run grades "
                     "what was not graded") from None
        # A worker that went away while asked (killed, retired) has no say: the others decide,
        # and if it comes back with another copy it refuses each task it is sent.
        answers = {addr: answer for addr, answer in answers.items()
                   if not isinstance(answer, (CommClosedError, ConnectionError, TimeoutError))}
        if not answers:
            raise GraderUnavailable(f"no grading worker is left at {where}",
                                    hint="start a worker; a re-run grades what was not graded")
        return {str(workers.get(addr, {}).get("name", addr)): answer for addr, answer in answers.items()}

    @staticmethod
    def _here(grade: Callable[..., Any], ctx: Any, job: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(grade(ctx, job, slot=0))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    @staticmethod
    def _relay(dask_future: Any, finish: Callable[[Any], Any]) -> cf.Future:
        future: cf.Future = cf.Future()

        def relay(f: Any) -> None:
            try:
                future.set_result(finish(f.result()))
            except cf.CancelledError as exc:  # the scheduler went away with the task
                future.set_exception(GraderUnavailable(
                    f"the Dask scheduler dropped this submission ({exc})",
                    hint="restart the scheduler; a re-run grades what was not graded"))
            except BaseException as exc:  # relay every failure to the caller's future
                future.set_exception(exc)

        dask_future.add_done_callback(relay)
        return future

    def shutdown(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
