"""Under CI as root, a skipped test is a failed test.

A fresh root machine has everything the sandbox, hub and browser tests need once
`scripts/bootstrap.sh` and the session fixtures have run; a skip there means a test
silently proved nothing (as the sandbox zoo once did, skipping on every fresh machine
because the slot uids were created by a fixture that ran later). Developers without
root, or outside CI, still see ordinary skips with their reasons.

Loaded by tests/conftest.py (its hooks are imported there); a plain module so that
tests can load it into a nested pytest run with ``-p ci_strict``.
"""

from __future__ import annotations

import os

import pytest

STRICT_WHY = "skipped under CI as root, where every test must run: "


def strict() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") and os.geteuid() == 0


def _reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and strict() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = STRICT_WHY + _reason(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module that skips at import (``pytest.importorskip``) fails its collection too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and strict():
        report.outcome = "failed"
        report.longrepr = STRICT_WHY + _reason(report.longrepr)
