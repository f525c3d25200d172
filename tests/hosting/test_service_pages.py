"""The service's instructor pages name every assignment of the course (not only the first)."""

from __future__ import annotations

import json
import urllib.parse
from types import SimpleNamespace

import pytest
from tornado.testing import AsyncHTTPTestCase

from autograder.hosting import service

ASSIGNMENTS = ("cnn_transfer", "param_counting")


class EmptyQueue:
    """A queue with no job: the pages need only its store and positions."""

    store = SimpleNamespace(jobs={})

    def position(self, job_id: str) -> int | None:
        return None


class InstructorPages(AsyncHTTPTestCase):
    def get_app(self):
        return service.make_app(EmptyQueue(), prefix="/services/autograder/",
                                instructor="instructor", assignments=ASSIGNMENTS)

    def setUp(self) -> None:
        self._patch = pytest.MonkeyPatch()
        # The hub's OAuth is not under test: the request comes from the instructor.
        self._patch.setattr(service._Base, "get_current_user",
                            lambda handler: {"name": "instructor"})
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        self._patch.undo()

    def test_the_status_page_links_the_class_view_of_each_assignment(self) -> None:
        """Does the instructor reach each assignment's class view from the status page, and
        does each link open that assignment's page?"""
        page = self.fetch("/services/autograder/").body.decode()
        for aid in ASSIGNMENTS:
            href = "/services/autograder/class?" + urllib.parse.urlencode({"assignment": aid})
            assert f"href='{href}'" in page and f"Class view of {aid}" in page
            view = self.fetch(href)
            assert view.code == 200 and f"{aid}: the class" in view.body.decode()
        assert self.fetch("/services/autograder/class?assignment=nope").code == 404
