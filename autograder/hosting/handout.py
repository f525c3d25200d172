"""``course hub release <assignment>``: the instructor publishes ``release/<id>/`` to the exchange.

Runs ``nbgrader release_assignment`` *as the instructor's Unix user* (``setpriv``), from
the instructor's course folder, after refreshing that folder's copy of ``release/`` (built
there with ``autograder.course.release.build_release`` when the repository has none), so
the exchange's outbound folder belongs to the instructor exactly as nbgrader expects.
Running it as root instead would make root own the course folder in the exchange and
break the instructor's own nbgrader commands later.

Not done here: building ``release/`` (``course release``, autograder.course.release).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from autograder import reach
from autograder.course.config import Course
from autograder.errors import HubError
from autograder.hosting import accounts
from autograder.paths import env_prefix


@dataclass(frozen=True)
class Handout:
    assignment_id: str
    outbound: str
    files: tuple[str, ...]


def release_assignment(course: Course, assignment_id: str) -> Handout:
    """Publish one released assignment to the exchange as the instructor."""
    course.config.assignment(assignment_id)  # a typed error for an unknown id
    if os.geteuid() != 0:
        raise HubError("`course hub release` must run as root (it acts as the instructor's user)",
                       hint="sudo .venv/bin/course hub release " + assignment_id)
    h = course.config.hub
    instructor = accounts.lookup_account(h.instructor)
    if instructor is None:
        raise HubError(f"the instructor user {h.instructor!r} does not exist", hint="run `course hub up` first")
    course_dir = accounts.prepare_instructor(course, instructor)
    if not (course_dir / "release" / assignment_id).is_dir():
        raise HubError(f"no release of {assignment_id} (release/{assignment_id}/ is missing)",
                       hint=f"write source/{assignment_id}/ and run `course release {assignment_id}`")
    layout = accounts.prepare_exchange(course, instructor)
    env = {
        "HOME": str(instructor.home), "USER": instructor.name, "LOGNAME": instructor.name,
        "PATH": f"{env_prefix() / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8",
    }
    argv = [*reach.reach_prefix(reach.kit_paths()),  # a checkout the instructor cannot traverse
            "setpriv", f"--reuid={instructor.uid}", f"--regid={instructor.gid}", "--init-groups",
            str(env_prefix() / "bin" / "nbgrader"), "release_assignment", assignment_id, "--force"]
    done = subprocess.run(argv, cwd=course_dir, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise HubError(f"nbgrader release_assignment {assignment_id} failed:\n{tail}",
                       hint=f"check {course_dir}/release/{assignment_id}/ and the exchange {layout.root}")
    outbound = layout.outbound / assignment_id
    files = tuple(sorted(str(p.relative_to(outbound)) for p in outbound.rglob("*") if p.is_file()))
    return Handout(assignment_id=assignment_id, outbound=str(outbound), files=files)
