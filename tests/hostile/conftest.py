"""Fixtures of the standing hostile suite (tests/hostile/).

Each `test_hostile_suite_<class>.py` attacks one class of hole the field keeps shipping, on
the real stack: the served app (`run_local`: daphne, SQLite, the simulator) in a
subprocess where HTTP framing matters, the Django test client / DRF APIClient on the real
PostgreSQL and Redis elsewhere, and small aiohttp servers (or the simulator) as upstreams.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

# The builder's run fixtures (simulator routing, waiting for runs) serve this suite too.
from tests.builder.conftest import (  # noqa: F401 - fixtures
    finish_run_fixture,
    lead_secrets,
    lead_workflow,
    providers,
    simulator,
    wait_for_fixture,
)
from tests.e2e.conftest import LocalApp, start_local_app, stop_local_app

# Runs execute on the executor thread (own connections); database blocks write to `data`.
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])


# --- the served app ------------------------------------------------------------------------


@dataclass
class ServedApp:
    """`make run` in a subprocess, with a logged-in HTTP client for its API."""

    local: LocalApp
    client: httpx.Client
    hook_url: str

    @property
    def base_url(self) -> str:
        return self.local.base_url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def runs(self) -> int:
        """How many runs the template workflow has (what a refused request must not add)."""
        workflows = self.client.get("/api/workflows/").json()
        return sum(
            self.client.get(f"/api/workflows/{w['id']}/runs/").json()["count"] for w in workflows
        )


@pytest.fixture(scope="session")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    local = start_local_app(tmp_path_factory.mktemp("served-app"))
    try:
        hook = next(
            m.group(1)
            for line in local.lines
            if (m := re.search(r"Webhook of .*: (http://\S+)", line))
        )
        # trust_env=False: a proxy from the environment must never see 127.0.0.1 traffic.
        client = httpx.Client(
            base_url=local.base_url, timeout=15, trust_env=False, follow_redirects=True
        )
        login = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert token, login.text[:500]
        answer = client.post(
            "/login/",
            data={"username": "admin", "password": local.password, "csrfmiddlewaretoken": token[1]},
        )
        assert answer.status_code == 200 and "sessionid" in client.cookies, answer.text[:500]
        yield ServedApp(local, client, hook)
        client.close()
    finally:
        stop_local_app(local)


# --- small upstream servers ----------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Upstream:
    """An aiohttp server on 127.0.0.1 in a thread; `requests` records what reached it."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hostport(self) -> str:
        return self.base_url.split("//", 1)[1]

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])


def serve(handler: Handler) -> Iterator[Upstream]:
    """Serve `handler` for every path; yields the Upstream, stops it afterwards."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        upstream.requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return await handler(request)

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", record)  # any path, line breaks too
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # hung handlers
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(box["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=main, name="hostile-upstream", daemon=True)
    thread.start()
    assert started.wait(10), "the upstream did not start"
    upstream = Upstream(f"http://127.0.0.1:{box['port']}")
    try:
        yield upstream
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def json_answer(payload: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(payload, status=status)

    return handler


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A plain upstream answering {"ok": true} to everything."""
    yield from serve(json_answer({"ok": True}))


@pytest.fixture
def private_target() -> Iterator[Upstream]:
    """A server on loopback that nothing a workflow sends may ever reach."""
    yield from serve(json_answer({"leaked": "internal data"}))


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
