"""Finding 1 (issue 7): a database block that outlives its timeout on SQLite — the `make run`
default — must not freeze the server. The real app (`run_local`: daphne, SQLite, runs on the
web server's own event loop) runs a never-ending recursive CTE with `timeout: 3`: the step
fails with a timeout error, the server answers within 1 s during and after, and the next
database block works."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalApp, start_local_app

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
ANSWER_WITHIN = 1.0


@pytest.fixture
def local_app(tmp_path: Path) -> Iterator[LocalApp]:
    app = start_local_app(tmp_path / "data")
    yield app
    app.process.terminate()
    try:
        app.process.wait(timeout=20)
    except subprocess.TimeoutExpired:  # a frozen server does not even handle SIGTERM
        app.process.kill()
        app.process.wait(timeout=20)


def signed_in(app: LocalApp) -> httpx.Client:
    client = httpx.Client(base_url=app.base_url, follow_redirects=True, timeout=10)
    login = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
    assert token, login.text[:500]
    client.post(
        "/admin/login/",
        data={
            "username": "admin",
            "password": app.password,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/admin/",
        },
    )
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    return client


def start_query(client: httpx.Client, sql: str, timeout: float | None = None) -> str:
    config: dict[str, Any] = {"sql": sql}
    if timeout is not None:
        config["timeout"] = timeout
    graph = {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {"id": "query", "type": "database", "name": "query", "config": config},
        ],
        "edges": [{"source": "webhook", "target": "query"}],
    }
    made = client.post("/api/workflows/", json={"name": "sql", "graph": graph})
    assert made.status_code == 201, made.text
    run = client.post(f"/api/workflows/{made.json()['id']}/runs/", json={"input": {}})
    assert run.status_code == 201, run.text
    return str(run.json()["id"])


def answered_quickly(client: httpx.Client, path: str) -> Any:
    started = time.monotonic()
    try:
        answer = client.get(path, timeout=ANSWER_WITHIN)
    except httpx.TimeoutException:
        pytest.fail(f"the server did not answer {path} within {ANSWER_WITHIN} s: it is frozen")
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < ANSWER_WITHIN
    return answer.json()


def wait_for_end(client: httpx.Client, run_id: str, within: float) -> dict[str, Any]:
    """Poll the run, every poll being an answer the server must give within 1 s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        run: dict[str, Any] = answered_quickly(client, f"/api/runs/{run_id}/")
        if run["status"] in {"succeeded", "failed", "cancelled"}:
            return run
        time.sleep(0.2)
    pytest.fail(f"run {run_id} did not end within {within} s")


def test_hostile_sql_runaway_statement_times_out_without_freezing_the_server(
    local_app: LocalApp,
) -> None:
    client = signed_in(local_app)
    try:
        runaway = start_query(client, RUNAWAY, timeout=3)
        # During: the runaway statement (and its retries) run; the server keeps answering.
        ended = wait_for_end(client, runaway, within=60)
        assert ended["status"] == "failed", ended
        assert "timed out after 3 s" in ended["error"], ended

        # After: the server still answers, and the next database block runs normally.
        answered_quickly(client, "/api/workflows/")
        following = wait_for_end(client, start_query(client, "SELECT 6 * 7 AS answer"), within=30)
        assert following["status"] == "succeeded", following
        assert following["outputs"]["query"]["rows"] == [{"answer": 42}], following
        answered_quickly(client, "/api/workflows/")
    finally:
        client.close()


def active_backends_running(sql: str) -> list[Any]:
    from django.db import connections

    try:
        with connections["data"].cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query = %s", [sql]
            )
            return cursor.fetchall()
    finally:
        connections.close_all()  # a thread's connection would keep the test database open


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_hostile_sql_postgres_statement_past_its_timeout_is_cancelled_in_the_server(
    django_user_model: Any,
) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    from engine.config import data_connection
    from engine.core.data import PostgresData

    def owner_connection() -> Any:
        try:
            owner = django_user_model.objects.create_user("sql-timeout")
            return data_connection(owner.pk)  # provisions the owner's schema and role
        finally:
            connections.close_all()

    configured = await sync_to_async(owner_connection)()
    assert isinstance(configured, PostgresData)
    data = PostgresData(configured._conninfo, max_size=1)  # one session: state would carry over
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await data.execute(RUNAWAY, [])
        assert time.monotonic() - started < 3
        assert await sync_to_async(active_backends_running)(RUNAWAY) == []
        assert (await data.execute("SELECT 6 * 7 AS answer", []))["rows"] == [{"answer": 42}]

        # A server-side bound even if a cancel request were lost, which no block can lift for
        # the next one: the session is reset when the connection goes back to the pool.
        await data.execute("SET statement_timeout = 0", [])
        shown = await data.execute("SHOW statement_timeout", [])
        assert shown["rows"] == [{"statement_timeout": "1h"}]
    finally:
        await data.aclose()
