"""The real served app (`run_local`: daphne, SQLite, as `make run`) signed in over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.conftest import LocalApp, start_local_app, stop_local_app


@dataclass
class Session:
    app: LocalApp
    client: httpx.Client  # signed in as the local admin, CSRF header set
    cookie: str
    csrf: str

    @property
    def port(self) -> int:
        return int(self.app.base_url.rsplit(":", 1)[1])


@contextmanager
def served(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Session]:
    app = start_local_app(data_dir, extra_env)
    try:
        with httpx.Client(base_url=app.base_url, timeout=30, trust_env=False) as client:
            login = client.get("/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
            assert token, login.text[:500]
            client.post(
                "/login/",
                data={
                    "username": "admin",
                    "password": app.password,
                    "csrfmiddlewaretoken": token[1],
                },
            )
            csrf = client.cookies["csrftoken"]
            client.headers.update({"X-CSRFToken": csrf})
            cookie = f"sessionid={client.cookies['sessionid']}; csrftoken={csrf}"
            yield Session(app, client, cookie, csrf)
    finally:
        stop_local_app(app)
