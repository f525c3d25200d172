"""``course hub up | down | status | release | render``: the local hub and production config."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.commands.ui import console
from autograder.course.config import load_course


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("hub", help="run the local JupyterHub; render production config")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("up", help="create users and exchange, start hub + grading service (root)"
                     ).set_defaults(func=run_up)
    verbs.add_parser("down", help="stop the hub, its user servers and the grading service"
                     ).set_defaults(func=run_down)
    verbs.add_parser("status", help="say what runs").set_defaults(func=run_status)
    release = verbs.add_parser("release", help="publish release/<id>/ to the exchange as the instructor")
    release.add_argument("assignment", help="assignment id from course_config.py")
    release.set_defaults(func=run_release)
    render = verbs.add_parser("render", help="write Zero to JupyterHub values, the grading cluster "
                              "and its network policies")
    render.add_argument("--out", type=Path, default=None, help="output folder (default: hub/)")
    render.add_argument("--check", action="store_true", help="fail if the files in --out are stale")
    render.set_defaults(func=run_render)


def run_up(args: argparse.Namespace) -> int:
    from autograder.hosting import localhub

    info = localhub.up(load_course())
    head = "The hub is already running" if info.already_running else "The hub is up"
    console.print(f"{head} (pid {info.hub_pid}): [bold]{info.url}[/bold]")
    console.print(f"  log in as: {', '.join(info.users)}  (instructor: {info.instructor})")
    console.print(f"  password:  {info.password}")
    console.print(f"  grading:   {info.service_url}")
    console.print(f"  formgrader (own tab; JupyterHub >= 4.1 blocks it in an iframe): "
                  f"{info.url.rsplit('/hub/', 1)[0]}/user/{info.instructor}/formgrader")
    console.print(f"  state, logs, PIDs: {info.state_dir}")
    console.print(f"[yellow]note:[/yellow] {info.limits_note}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    from autograder.hosting import localhub

    report = localhub.down(load_course())
    if not report.was_running:
        console.print("No hub was running.")
    else:
        console.print("The hub is stopped." if report.hub_stopped else "The hub did not stop in time; killed it.")
    for what in report.killed:
        console.print(f"  also stopped: {what}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from autograder.hosting import localhub

    st = localhub.status(load_course())
    if not st.running:
        console.print("The hub is not running.")
        return 1
    console.print(f"The hub runs (pid {st.hub_pid}, {'healthy' if st.healthy else 'NOT answering'}): {st.url}")
    console.print(f"  proxy pid {st.proxy_pid}, grading service pid {st.service_pid}")
    if st.servers:
        for user, pid in st.servers.items():
            console.print(f"  server of {user}: pid {pid}")
    else:
        console.print("  no user server runs")
    return 0


def run_release(args: argparse.Namespace) -> int:
    from autograder.hosting.handout import release_assignment

    handout = release_assignment(load_course(), args.assignment)
    console.print(f"Released {handout.assignment_id} to {handout.outbound} ({len(handout.files)} files); "
                  "students fetch it in Lab: Nbgrader > Assignments.")
    return 0


def run_render(args: argparse.Namespace) -> int:
    from autograder.hosting import render

    course = load_course()
    out = args.out or course.rendered_hub_dir
    if args.check:
        stale = render.stale_files(course, out)
        if stale:
            from autograder.errors import HubError

            raise HubError(f"stale files in {out}: {', '.join(stale)}",
                           hint="run `course hub render` and commit hub/")
        console.print(f"{out} is up to date with course_config.py")
        return 0
    for path in render.write_all(course, out):
        console.print(f"wrote {path}")
    return 0
