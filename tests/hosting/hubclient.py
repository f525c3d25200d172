"""A tiny cookie-based client for the local hub (log in, start a server, GET pages), stdlib only."""

from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request


class HubClient:
    """One browser-like session of one user."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str, *, timeout_s: float = 30.0) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=timeout_s) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def post(self, path: str, data: dict[str, str], *, timeout_s: float = 30.0) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.base + path, data=body, method="POST")
        try:
            with self.opener.open(request, timeout=timeout_s) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def login(self, user: str, password: str) -> None:
        status, page = self.get("/hub/login")
        assert status == 200, page[:500]
        match = re.search(r'name="_xsrf"\s+value="([^"]+)"', page)
        fields = {"username": user, "password": password}
        if match:
            fields["_xsrf"] = match.group(1)
        status, page = self.post("/hub/login?next=", fields)
        assert status == 200 and "Sign in" not in page[:3000] or "/hub/home" in page, f"login failed: {status}"

    def start_server(self, user: str, *, timeout_s: float = 120.0) -> None:
        """Ask the hub for the user's server and wait until Jupyter Server answers."""
        self.get("/hub/spawn")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, _ = self.get(f"/user/{user}/api/status", timeout_s=5)
            if status == 200:
                return
            if status == 403:  # the server runs; log in to it (hub OAuth) and ask again
                self.get(f"/user/{user}/lab", timeout_s=30)
                continue
            time.sleep(1)
        raise TimeoutError(f"the server of {user} did not start within {timeout_s:g} s")
