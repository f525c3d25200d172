"""One error hierarchy for the kit.

Every error carries what happened (``message``) and what to do next (``hint``).
Only :mod:`autograder.cli` turns them into exit codes and printed lines.
"""

from __future__ import annotations


class CourseError(Exception):
    """Base of every error the kit raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(CourseError):
    """``course_config.py`` is missing, does not load, or holds a bad value."""


class DatasetError(CourseError):
    """The dataset is missing, changed, or holds a file that is not an image."""


class WeightsError(CourseError):
    """The pretrained weights are missing or do not match their declared hash."""


class ReleaseError(CourseError):
    """The source notebook cannot be released, or release/ is stale."""


class SubmissionError(CourseError):
    """A submission is not a readable notebook (malformed JSON, wrong nbformat...)."""


class SandboxUnavailable(CourseError):
    """A part of the sandbox (bubblewrap, a uid, cgroups) is missing on this machine."""


class GradingError(CourseError):
    """Grading could not run (as opposed to a submission that scored low)."""


class HubError(CourseError):
    """The local JupyterHub could not be started, stopped or reached."""


class GraderUnavailable(CourseError):
    """The grading cluster could not be reached, or was lost mid-batch: the submissions it
    held were not graded (nothing is recorded for them) and a later run grades them."""

    EXIT_STATUS = 75
    """EX_TEMPFAIL: what ``course grade`` exits with, so a caller (the hub's service) retries."""
