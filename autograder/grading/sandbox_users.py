"""The unprivileged system users student code runs as: one per grading slot.

Decision: each grading slot owns a system user ``<prefix><slot>`` (no home, shell
nologin, its own group), created once by ``course sandbox setup`` (root); a slot user
with uid or gid 0 is refused. Which slot a job may use is :mod:`autograder.grading.slots`;
how the kernel is switched to the user is :mod:`autograder.grading.sandbox`.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass

from autograder.errors import SandboxUnavailable


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account one grading slot runs student code as."""

    name: str
    uid: int
    gid: int


def slot_user_name(prefix: str, slot: int) -> str:
    return f"{prefix}{slot}"


def find_sandbox_user(prefix: str, slot: int) -> SandboxUser:
    """The slot's user, or :class:`SandboxUnavailable` naming the command that creates it."""
    name = slot_user_name(prefix, slot)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxUnavailable(
            f"sandbox user {name} does not exist",
            hint="run `course sandbox setup` as root (it creates one user per grading slot)",
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise SandboxUnavailable(
            f"sandbox user {name} has uid or gid 0",
            hint=f"delete {name} and run `course sandbox setup` again",
        )
    return SandboxUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def ensure_sandbox_users(prefix: str, count: int) -> list[SandboxUser]:
    """Create system users ``<prefix>0..count-1`` (no home, shell nologin) where missing."""
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "creating sandbox users needs root", hint="run `sudo course sandbox setup`"
        )
    users = []
    for slot in range(count):
        name = slot_user_name(prefix, slot)
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", "--user-group", name],
                check=True, capture_output=True, text=True,
            )
        users.append(find_sandbox_user(prefix, slot))
    return users
