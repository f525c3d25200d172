"""The grade-on-submit service: a JupyterHub-managed service at ``/services/<hub.service_name>/``.

The hub starts it (``c.JupyterHub.services``, with a command) as root, hands it an API
token with the ``admin`` role, and proxies ``/services/<name>/`` to ``hub.service_port``.
It polls the exchange's ``inbound`` every second, queues new submissions, grades them
(:mod:`autograder.hosting.gradequeue`) and publishes nbgrader-style feedback.

Pages (hub OAuth through ``jupyterhub.services.auth.HubOAuthenticated``):

- ``/`` — a student sees only their own submissions (state, queue position, score,
  feedback); the instructor (``hub.instructor``) sees everyone's and can re-grade.
- ``/jobs/<id>/feedback`` — the feedback page, for its student and the instructor; 403
  for anyone else. ``/api/jobs`` — the same rows as JSON.
- ``/class`` — the instructor only: score histogram, pass rate per item, run times
  against the limits (:mod:`classview`); ``/class.csv`` the same rows for a spreadsheet.
- ``/health`` — no log-in, for ``course hub up``.

Decisions: polling rather than inotify (works on the network filesystems a shared
exchange lives on in production); a job is only ever graded from a private snapshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import os
import signal
import urllib.parse
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web

from autograder.course.config import GRADEBOOK_FILE, load_course
from autograder.hosting import accounts, classview
from autograder.hosting.gradequeue import DONE, GRADE_MARGIN_S, CourseGradeRunner, GradingQueue, Job, JobStore, job_summary

SCAN_INTERVAL_S = 1.0


class _Base(HubOAuthenticated, web.RequestHandler):
    @property
    def queue(self) -> GradingQueue:
        return self.settings["queue"]

    @property
    def instructor(self) -> str:
        return self.settings["instructor"]

    def user_name(self) -> str:
        user = self.current_user
        assert user is not None
        return user["name"]

    def visible_jobs(self) -> list[Job]:
        name = self.user_name()
        jobs = sorted(self.queue.store.jobs.values(), key=lambda j: j.found_at, reverse=True)
        return jobs if name == self.instructor else [j for j in jobs if j.student == name]

    def job_for_user(self, job_id: str) -> Job:
        job = self.queue.store.jobs.get(job_id)
        name = self.user_name()
        if job is None or (name != self.instructor and job.student != name):
            raise web.HTTPError(403 if job is not None else 404)
        return job


class HealthHandler(web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok", "pending": len(self.settings["queue"].pending)})


class JobsApiHandler(_Base):
    @web.authenticated
    def get(self) -> None:
        rows = [job_summary(j, self.queue.position(j.job_id)) for j in self.visible_jobs()]
        if self.user_name() != self.instructor:
            for row in rows:
                row.pop("detail", None)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"user": self.user_name(), "jobs": rows}))


class FeedbackHandler(_Base):
    @web.authenticated
    def get(self, job_id: str) -> None:
        job = self.job_for_user(job_id)
        page = self.queue.results_dir(job) / "feedback.html"
        if not job.feedback_published or not page.is_file():
            raise web.HTTPError(404, "no feedback yet")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(page.read_bytes())


class RegradeHandler(_Base):
    @web.authenticated
    def post(self, job_id: str) -> None:
        if self.user_name() != self.instructor:
            raise web.HTTPError(403, "only the instructor can re-grade")
        self.queue.regrade(self.job_for_user(job_id).job_id)
        self.redirect(self.settings["prefix"])


class _ClassBase(_Base):
    """The instructor's class view: each student's latest graded submission of one
    assignment (``?assignment=``; the status page links each of the course's assignments,
    and a bare ``class`` shows the first)."""

    def latest_results(self) -> tuple[str, dict[str, dict[str, Any]]]:
        if self.user_name() != self.instructor:
            raise web.HTTPError(403, "only the instructor sees the class")
        assignments = self.settings["assignments"]
        assignment = self.get_argument("assignment", assignments[0] if assignments else "")
        if assignment not in assignments:
            raise web.HTTPError(404, "no such assignment")
        latest: dict[str, Job] = {}
        for job in self.queue.store.jobs.values():
            if job.assignment_id == assignment and job.state == DONE and (
                    job.student not in latest or job.found_at > latest[job.student].found_at):
                latest[job.student] = job
        results = {}
        for student, job in latest.items():
            try:
                results[student] = json.loads((self.queue.results_dir(job) / "results.json").read_text())
            except (OSError, ValueError):
                continue  # cleaned up or half-written: left out rather than guessed
        return assignment, results


class ClassPage(_ClassBase):
    @web.authenticated
    def get(self) -> None:
        assignment, results = self.latest_results()
        href = url_path_join(self.settings["prefix"], "class.csv") + "?" + urllib.parse.urlencode(
            {"assignment": assignment})
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(classview.class_page(classview.class_stats(assignment, results),
                                        limits=self.settings["limits"], csv_href=href))


class ClassCsv(_ClassBase):
    @web.authenticated
    def get(self) -> None:
        assignment, results = self.latest_results()
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{assignment}-class.csv"')
        self.write(classview.class_csv(results))


class StatusPage(_Base):
    @web.authenticated
    def get(self) -> None:
        name = self.user_name()
        is_instructor = name == self.instructor
        prefix = self.settings["prefix"]
        rows = []
        for job in self.visible_jobs():
            quoted = html.escape(urllib.parse.quote(job.job_id, safe=""))
            note = f"{job.message} {job.detail}" if is_instructor else job.message
            position = self.queue.position(job.job_id)
            state = f"{job.state} (#{position} in queue)" if position else job.state
            score = "" if job.score is None else f"{job.score:g} / {job.max_score:g}"
            link = (f'<a href="{prefix}jobs/{quoted}/feedback">feedback</a>'
                    if job.feedback_published else "")
            action = ""
            if is_instructor:
                action = (f'<form method="post" action="{prefix}jobs/{quoted}/regrade">'
                          f'{self.xsrf_form_html()}<button>Re-grade</button></form>')
            rows.append(
                f"<tr data-job='{html.escape(job.job_id)}'><td>{html.escape(job.student)}</td>"
                f"<td>{html.escape(job.assignment_id)}</td><td>{html.escape(job.submitted_at)}</td>"
                f"<td class='state'>{html.escape(state)}</td><td class='score'>{score}</td>"
                f"<td class='note'>{html.escape(note.strip())}</td><td>{link}</td><td>{action}</td></tr>"
            )
        who = "all submissions (instructor view)" if is_instructor else f"submissions of {html.escape(name)}"
        class_link = "".join(
            f"<p><a href='{prefix}class?{html.escape(urllib.parse.urlencode({'assignment': a}))}'>"
            f"Class view of {html.escape(a)}: scores, items, run times</a></p>"
            for a in self.settings["assignments"]) if is_instructor else ""
        body = "".join(rows) or "<tr><td colspan='8'>No submission yet.</td></tr>"
        self.write(
            "<!doctype html><html><head><meta charset='utf-8'><title>Autograder</title>"
            "<meta http-equiv='refresh' content='5'>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
            "border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
            f"<h1>Autograder — {who}</h1>{class_link}<table><tr><th>student</th><th>assignment</th>"
            "<th>submitted</th><th>state</th><th>score</th><th>note</th><th></th><th></th></tr>"
            f"{body}</table></body></html>"
        )


def make_app(queue: GradingQueue, *, prefix: str, instructor: str,
             assignments: tuple[str, ...] = (), limits: dict[str, float] | None = None
             ) -> web.Application:
    routes: list[Any] = [
        (prefix, StatusPage),
        (url_path_join(prefix, "health"), HealthHandler),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        (url_path_join(prefix, "api/jobs"), JobsApiHandler),
        (url_path_join(prefix, r"jobs/([^/]+)/feedback"), FeedbackHandler),
        (url_path_join(prefix, r"jobs/([^/]+)/regrade"), RegradeHandler),
        (url_path_join(prefix, "class"), ClassPage),
        (url_path_join(prefix, "class.csv"), ClassCsv),
    ]
    return web.Application(routes, cookie_secret=os.urandom(32), queue=queue, prefix=prefix,
                           instructor=instructor, xsrf_cookies=False,
                           assignments=tuple(assignments), limits=dict(limits or {}))


def build_queue() -> tuple[GradingQueue, str, str, int]:
    course = load_course()
    c = course.config
    state = Path(os.environ.get("COURSE_HUB_STATE") or course.hub_state_dir) / "service"
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    layout = accounts.ExchangeLayout(root=Path(c.hub.exchange_dir), course_id=c.course_id)
    instructor = accounts.lookup_account(c.hub.instructor)
    runner = CourseGradeRunner(
        course_root=course.root, timeout_s=c.limits.notebook_budget_s + GRADE_MARGIN_S,
        gradebook=(accounts.instructor_course_dir(course, instructor) / GRADEBOOK_FILE
                   if instructor else None),
        gradebook_owner=(instructor.uid, instructor.gid) if instructor else None,
    )
    queue = GradingQueue(
        inbound=layout.inbound, feedback_dir=layout.feedback, work_dir=state / "work",
        notebooks={a.assignment_id: a.notebook for a in c.assignments}, runner=runner,
        feedback_gid=instructor.gid if instructor else 0, store=JobStore(state / "jobs.json"),
    )
    return queue, c.hub.instructor, str(state), c.grading.concurrency


def listen_address(service_url: str) -> tuple[str, int]:
    """Where the service listens: the host and port of ``JUPYTERHUB_SERVICE_URL``, as
    JupyterHub's own services do. The local hub gives ``http://127.0.0.1:<port>``; a
    Deployment behind a Kubernetes Service sets ``http://0.0.0.0:<port>`` (loopback there
    would be unreachable from the hub's proxy)."""
    from urllib.parse import urlsplit

    from autograder.errors import ConfigError

    parts = urlsplit(service_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise ConfigError(f"JUPYTERHUB_SERVICE_URL={service_url!r} names no host and port to listen on",
                          hint="set it to http://<address>:<port>, e.g. http://0.0.0.0:18082 in a pod")
    return parts.hostname, port


async def serve() -> None:
    queue, instructor, state, workers = build_queue()
    Path(state, "service.pid").write_text(str(os.getpid()))
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/autograder/")
    host, port = listen_address(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:18082"))
    config = load_course().config
    app = make_app(queue, prefix=prefix, instructor=instructor,
                   assignments=tuple(a.assignment_id for a in config.assignments),
                   limits={k: float(v) for k, v in dataclasses.asdict(config.limits).items()})
    app.listen(port, address=host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(queue.run_scanner(interval_s=SCAN_INTERVAL_S))]
    tasks += [asyncio.create_task(queue.run_worker()) for _ in range(max(1, workers))]
    await stop.wait()
    for task in tasks:
        task.cancel()
    Path(state, "service.pid").unlink(missing_ok=True)


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
