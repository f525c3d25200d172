"""The whole loop in headless Chromium on the local hub: fetch, answer, submit, graded feedback.

One story, in order (module-scoped state): student1 logs in, fetches the assignment in
Lab's Nbgrader > Assignments panel, answers question 1a, saves and submits; the grading
service runs the real `course grade` (reduced profile, stand-in weights); student1
fetches feedback and reads the score; student2 submits too and cannot open student1's
feedback or status; student2 also hands in the second assignment, graded against its own
rubric; the instructor sees every submission, one class view per assignment, and opens
formgrader in its own tab. Screenshots go to tests/artifacts/.

Every score checked is the grader's own: read from the results.json `course grade` wrote
for that submission in the service's output folder, and compared exactly with what the
service reports and the pages show. How fast feedback comes back is measured by
bench/hub_latency.py (a goal there, not an assertion here: a shared machine's load
decides it).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autograder import reach
from autograder.hosting import accounts
from autograder.hosting.hubconfig import hub_paths

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ANSWER = "conv1_params = 2 * 2 * 3 * 32 + 32\nconv2_params = 2 * 2 * 32 * 32 + 32\nprint(conv1_params, conv2_params)"
GRADE_TIMEOUT_S = 600
SPAWN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser(hub) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (scripts/bootstrap.sh installs it)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def story() -> dict[str, Any]:
    """What one step of the story leaves for the next."""
    return {}


def _login(browser: Any, hub: Any, user: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", hub.password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=SPAWN_TIMEOUT_MS)
    page.wait_for_selector(".jp-LabShell", timeout=SPAWN_TIMEOUT_MS)
    return context, page


def _open_assignments(page: Any) -> None:
    """Nbgrader > Assignment List (the panel titled "Assignments")."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    page.wait_for_selector("text=Released assignments")


def _button(page: Any, assignment_id: str, label: str) -> Any:
    """The ``label`` button in the panel row of ``assignment_id`` (rows are ``div.col-md-12``)."""
    button = page.get_by_role("button", name=label, exact=True)
    row = page.locator("div.col-md-12", has=page.locator(".item_name", has_text=assignment_id)).filter(has=button)
    return row.get_by_role("button", name=label, exact=True).first


def _fetch_and_submit(page: Any, user: str, assignment_id: str, notebook: str, *, answer: str | None,
                      artifacts: Path, answer_cell: str = "print(conv1_params, conv2_params)",
                      shots: str = "") -> None:
    """Fetch, optionally replace the code cell holding ``answer_cell`` with ``answer``, save, submit."""
    _open_assignments(page)
    _button(page, assignment_id, "Fetch").click()
    _button(page, assignment_id, "Submit").wait_for()
    page.screenshot(path=str(artifacts / f"{user}{shots}-1-fetched.png"))
    if answer is not None:
        page.goto(page.url.split("/lab")[0] + f"/lab/tree/{assignment_id}/{notebook}?reset")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        page.wait_for_selector("#jp-main-statusbar >> text=/Idle/", timeout=SPAWN_TIMEOUT_MS)
        cell = page.locator(".jp-CodeCell", has_text=answer_cell).first
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(answer)
        page.keyboard.press("Control+s")
        page.wait_for_selector(".jp-mod-dirty", state="detached")
        page.screenshot(path=str(artifacts / f"{user}{shots}-2-answered.png"))
        _open_assignments(page)
    _button(page, assignment_id, "Submit").click()
    _button(page, assignment_id, "Fetch Feedback").wait_for()
    page.screenshot(path=str(artifacts / f"{user}{shots}-3-submitted.png"))


def _jobs(context: Any, hub: Any) -> list[dict[str, Any]]:
    response = context.request.get(f"{hub.url}{hub.service_path}api/jobs")
    assert response.ok, response.status
    return response.json()["jobs"]


def _wait_graded(context: Any, hub: Any, user: str, assignment_id: str, *,
                 timeout_s: float = GRADE_TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = [j for j in _jobs(context, hub) if j["student"] == user and j["assignment_id"] == assignment_id]
        if jobs and jobs[0]["state"] in ("done", "failed", "rejected"):
            return jobs[0]
        time.sleep(2)
    raise AssertionError(f"{user}'s submission was not graded within {timeout_s:g} s")


def test_student_fetches_answers_and_submits(hub, browser, story, artifacts):
    """Can a student do the whole hand-in in Lab's Assignments panel?"""
    a = hub.course.config.assignments[0]
    user = hub.students[0]
    context, page = _login(browser, hub, user)
    story["s1"] = (context, page)
    # Visit the service once so its OAuth cookie exists for API calls from this context.
    page.goto(f"{hub.url}{hub.service_path}")
    page.wait_for_selector("h1")
    page.goto(f"{hub.url}/user/{user}/lab?reset")
    page.wait_for_selector(".jp-LabShell")
    _fetch_and_submit(page, user, a.assignment_id, a.notebook, answer=ANSWER, artifacts=artifacts)


def _graded_results(hub: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The results.json `course grade` wrote for this job, in the service's own output folder."""
    folder = hub_paths(hub.course).service / "work" / job["job_id"] / "graded" / job["student"]
    return json.loads((folder / "results.json").read_text())


def _shown(score: float, max_score: float) -> str:
    """How feedback.html and the status page write a score (report.py, service.py)."""
    return f"{score:g} / {max_score:g}"


def test_submission_is_graded_by_the_real_grader(hub, story):
    """Does the service grade it with `course grade`, report exactly the grader's score, and
    give full points for the answered item?"""
    context, _ = story["s1"]
    job = _wait_graded(context, hub, hub.students[0], hub.course.config.assignments[0].assignment_id)
    story["job"] = job
    assert job["state"] == "done", job
    assert job["feedback_published"] is True
    results = _graded_results(hub, job)
    story["results"] = results
    assert results["extra_data"]["student"] == hub.students[0]
    items = {t["name"]: t for t in results["tests"]}
    assert results["score"] == round(sum(t["score"] for t in results["tests"]), 4)
    assert results["max_score"] == sum(t["max_score"] for t in results["tests"])
    answered = items["q1_conv_params"]
    points = hub.course.config.assignments[0].points["q1_conv_params"]
    assert (answered["score"], answered["max_score"], answered["status"]) == (points, points, "passed"), answered
    # the service reports the grader's numbers, not its own
    assert (job["score"], job["max_score"]) == (results["score"], results["max_score"])
    assert job["runtime_s"] == results["execution_time"]


def test_student_fetches_feedback_and_sees_the_score(hub, story, artifacts):
    """Does Fetch Feedback bring back the grader's own page, showing exactly the score in
    results.json, and does the status page show the same?"""
    a = hub.course.config.assignments[0]
    user = hub.students[0]
    context, page = story["s1"]
    results = story["results"]
    expected = _shown(results["score"], results["max_score"])
    page.goto(f"{hub.url}/user/{user}/lab?reset")
    page.wait_for_selector(".jp-LabShell")
    _open_assignments(page)
    page.wait_for_selector("text=(feedback available to fetch)")
    _button(page, a.assignment_id, "Fetch Feedback").click()
    page.wait_for_selector("text=(view feedback)")
    page.screenshot(path=str(artifacts / f"{user}-4-feedback-fetched.png"))
    listing = context.request.get(f"{hub.url}/user/{user}/api/contents/{a.assignment_id}/feedback").json()
    (stamp,) = [entry["name"] for entry in listing["content"]]
    feedback_url = f"{hub.url}/user/{user}/files/{a.assignment_id}/feedback/{urllib.parse.quote(stamp)}/" \
                   f"{Path(a.notebook).stem}.html"
    # what the student fetched is, byte for byte, the page the grader wrote for this submission
    graded = hub_paths(hub.course).service / "work" / story["job"]["job_id"] / "graded" / user / "feedback.html"
    fetched = context.request.get(feedback_url)
    assert fetched.ok and fetched.body() == graded.read_bytes()
    page.goto(feedback_url)
    page.screenshot(path=str(artifacts / f"{user}-5-feedback-page.png"), full_page=False)
    assert page.inner_text(".score").strip() == expected
    answered = next(t for t in results["tests"] if t["name"] == "q1_conv_params")
    row = page.locator("tr", has=page.locator("code", has_text=re.compile(r"^q1_conv_params$")))
    assert row.locator("td.num").inner_text().strip() == _shown(answered["score"], answered["max_score"])
    # named as the release notebook names it, under its part
    from autograder.grading.layout import item_labels

    label = item_labels(hub.course.release_dir(a.assignment_id) / a.notebook)["q1_conv_params"]
    assert row.locator("span.q").inner_text() == label.question
    assert page.locator("h3", has_text=label.part).count() == 1
    story["feedback_url"] = feedback_url
    page.goto(f"{hub.url}{hub.service_path}")
    page.wait_for_selector("h1")
    assert page.locator("td.score").all_inner_texts() == [expected]


def test_another_student_cannot_see_the_first_ones_work(hub, browser, story, artifacts):
    """Is student1's feedback closed to student2 (service page, service feedback, Lab files, exchange file)?"""
    a = hub.course.config.assignments[0]
    first, second = hub.students[0], hub.students[1]
    context, page = _login(browser, hub, second)
    story["s2"] = (context, page)
    page.goto(f"{hub.url}{hub.service_path}")
    page.wait_for_selector("h1")
    assert first not in page.inner_text("table")
    page.screenshot(path=str(artifacts / f"{second}-status-page.png"))
    job_id = urllib.parse.quote(story["job"]["job_id"], safe="")
    assert context.request.get(f"{hub.url}{hub.service_path}jobs/{job_id}/feedback").status == 403
    assert all(j["student"] == second for j in _jobs(context, hub))
    assert context.request.get(story["feedback_url"], max_redirects=0).status in (302, 403, 404)
    # The published file in the exchange: student2 cannot read it even knowing its name.
    feedback_dir = Path(hub.course.config.hub.exchange_dir) / hub.course.config.course_id / "feedback"
    (published,) = list(feedback_dir.glob("*.html"))
    denied = subprocess.run(["setpriv", f"--reuid={second}", f"--regid={second}", "--init-groups",
                             "cat", str(published)], capture_output=True, text=True)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    listing = subprocess.run(["setpriv", f"--reuid={second}", f"--regid={second}", "--init-groups",
                              "ls", str(feedback_dir)], capture_output=True, text=True)
    assert listing.returncode != 0
    # and student2 hands in too (no answer), for the instructor's view
    page.goto(f"{hub.url}/user/{second}/lab?reset")
    page.wait_for_selector(".jp-LabShell")
    _fetch_and_submit(page, second, a.assignment_id, a.notebook, answer=None, artifacts=artifacts)


def _solution_of(course: Any, assignment: Any, grade_id: str) -> str:
    """The reference solution's own code for one answer cell (source notebook, markers dropped)."""
    nb = json.loads((course.source_dir(assignment.assignment_id) / assignment.notebook).read_text())
    (cell,) = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    lines = "".join(cell["source"]).splitlines()
    return "\n".join(line for line in lines if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def test_the_second_assignment_is_handed_out_and_graded(hub, story, artifacts):
    """Does a student see every released assignment, and is a hand-in of the second one graded
    against its own rubric, with full points for the item answered as the reference does?"""
    second = hub.course.config.assignments[1]
    user = hub.students[1]
    context, page = story["s2"]
    page.goto(f"{hub.url}/user/{user}/lab?reset")
    page.wait_for_selector(".jp-LabShell")
    _open_assignments(page)
    for a in hub.course.config.assignments:
        page.wait_for_selector(f".item_name >> text={a.assignment_id}")
    answer = _solution_of(hub.course, second, "a_dense_conv_params")
    _fetch_and_submit(page, user, second.assignment_id, second.notebook, answer=answer, artifacts=artifacts,
                      answer_cell="print(dense_params, conv_params)", shots=f"-{second.assignment_id}")
    job = _wait_graded(context, hub, user, second.assignment_id)
    assert job["state"] == "done", job
    results = _graded_results(hub, job)
    assert results["extra_data"]["student"] == user
    items = {t["name"]: t for t in results["tests"]}
    assert set(items) == set(second.points)  # its own rubric, not the first assignment's
    points = second.points["q1_dense_conv_params"]
    answered = items["q1_dense_conv_params"]
    assert (answered["score"], answered["max_score"], answered["status"]) == (points, points, "passed"), answered
    assert results["score"] == points  # nothing else was answered
    assert (job["score"], job["max_score"]) == (results["score"], results["max_score"])


def test_instructor_sees_both_submissions(hub, browser, story, artifacts):
    context, page = _login(browser, hub, hub.instructor)
    first, second = (a.assignment_id for a in hub.course.config.assignments[:2])
    _wait_graded(context, hub, hub.students[1], first)
    _wait_graded(context, hub, hub.students[1], second)
    page.goto(f"{hub.url}{hub.service_path}")
    page.wait_for_selector("h1")
    table = page.inner_text("table")
    assert hub.students[0] in table and hub.students[1] in table
    assert page.locator("button", has_text="Re-grade").count() >= 2
    page.screenshot(path=str(artifacts / "instructor-service-view.png"))
    # re-grade student2's submission from the instructor view
    before = [j for j in _jobs(context, hub) if j["student"] == hub.students[1] and j["assignment_id"] == first][0]
    page.locator("tr", has_text=hub.students[1]).filter(has_text=first).get_by_role(
        "button", name="Re-grade").click()
    page.wait_for_selector("h1")
    deadline = time.monotonic() + GRADE_TIMEOUT_S
    while time.monotonic() < deadline:
        again = [j for j in _jobs(context, hub) if j["job_id"] == before["job_id"]][0]
        if again["attempts"] == before["attempts"] + 1 and again["state"] == "done":
            break
        time.sleep(2)
    else:
        raise AssertionError(f"the re-grade did not finish: {again}")
    # one class view per assignment: its students, three plots, and a CSV with the scores the
    # service reports (in its own tab: the status page reloads itself every few seconds)
    done = [j for j in _jobs(context, hub) if j["state"] == "done"]
    for a in hub.course.config.assignments:
        graded = {j["student"]: j["score"] for j in done if j["assignment_id"] == a.assignment_id}
        view = context.new_page()
        view.goto(f"{hub.url}{hub.service_path}")
        href = view.get_by_role("link", name=re.compile(f"Class view of {a.assignment_id}")).get_attribute("href")
        view.goto(urllib.parse.urljoin(f"{hub.url}{hub.service_path}", href))
        view.wait_for_selector("h2 >> text=Pass rate per item")
        assert view.locator("svg").count() == 3
        assert f"{len(graded)} student(s)" in view.inner_text("main")
        view.screenshot(path=str(artifacts / f"instructor-class-view-{a.assignment_id}.png"), full_page=True)
        view.close()
        rows = list(csv.DictReader(io.StringIO(context.request.get(
            f"{hub.url}{hub.service_path}class.csv?assignment={a.assignment_id}").text())))
        assert {r["student"]: float(r["score"]) for r in rows} == graded
    student_view = story["s1"][0].request.get(f"{hub.url}{hub.service_path}class")
    assert student_view.status == 403
    # formgrader in its own tab (JupyterHub >= 4.1 forbids it inside Lab's iframe)
    formgrader = context.new_page()
    formgrader.goto(f"{hub.url}/user/{hub.instructor}/formgrader", timeout=SPAWN_TIMEOUT_MS)
    formgrader.wait_for_selector("text=Manage Assignments")
    for a in hub.course.config.assignments:
        formgrader.wait_for_selector(f"td >> text={a.assignment_id}")
    formgrader.screenshot(path=str(artifacts / "instructor-formgrader.png"))
    for key in ("s1", "s2"):
        story[key][0].close()
    context.close()


def test_the_instructor_can_still_collect_with_nbgrader(hub):
    """Does the hardened exchange still let `nbgrader collect` (formgrader's Collect) read submissions?"""
    first, second = hub.course.config.assignments[:2]
    account = accounts.lookup_account(hub.instructor)
    course_dir = accounts.instructor_course_dir(hub.course, account)
    env = {"HOME": str(account.home), "PATH": f"{sys.prefix}/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    # As in the instructor's own server: the kit reached first where it sits in a folder the
    # instructor cannot traverse (autograder/reach.py; nothing when it does not).
    for a in (first, second):
        done = subprocess.run([*reach.reach_prefix(reach.kit_paths()),
                               "setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups",
                               "nbgrader", "collect", a.assignment_id, "--update"],
                              cwd=course_dir, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-1500:]
    handed_in = [(s, first) for s in hub.students] + [(hub.students[1], second)]
    for student, a in handed_in:
        assert (course_dir / "submitted" / student / a.assignment_id / a.notebook).is_file()
