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


def test_a_service_url_without_a_host_and_port_is_one_clear_error():
    """The service listens where JUPYTERHUB_SERVICE_URL says; does a URL it cannot listen on
    (no port, no scheme, no host, a port that is not a number) name the variable and the fix,
    rather than fail deep in Tornado?"""
    from autograder.errors import ConfigError

    assert service.listen_address("http://0.0.0.0:18082") == ("0.0.0.0", 18082)
    assert service.listen_address("http://127.0.0.1:18082/") == ("127.0.0.1", 18082)
    for bad in ("http://127.0.0.1", "127.0.0.1:18082", "http://:18082", "http://hub:port"):
        with pytest.raises(ConfigError) as info:
            service.listen_address(bad)
        assert "JUPYTERHUB_SERVICE_URL" in info.value.message and "0.0.0.0" in info.value.hint
