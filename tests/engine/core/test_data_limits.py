"""A query's result is held to the block's output limit while it is read, not after.

Each memory test runs the query in a fresh interpreter and compares its peak RSS before and
after: the old reading (the whole result fetched, then converted) grew by several times the
result; now the process grows by about the limit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.core.data import SqliteData
from engine.core.errors import SizeLimitError
from engine.core.sizes import DEFAULT_MAX_OUTPUT_BYTES

LIMIT = 1_000_000


@pytest.fixture
async def data(tmp_path: Path) -> Any:
    path = tmp_path / "owner.sqlite3"
    sqlite3.connect(path).close()
    connection = SqliteData(str(path))
    yield connection
    await connection.aclose()


async def test_a_sqlite_result_past_the_limit_fails_with_the_block_output_message(
    data: SqliteData,
) -> None:
    many = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) "
        "SELECT zeroblob(20000) AS b FROM c"
    )
    with pytest.raises(SizeLimitError) as failed:
        await data.execute(many, [], max_bytes=LIMIT)
    assert str(failed.value) == (
        f"the block's output is larger than {LIMIT} bytes (KLYNTOS_MAX_OUTPUT_BYTES)"
    )
    # The connection serves the next statement; without a limit nothing changed.
    assert (await data.execute("SELECT 6 * 7 AS a", [], max_bytes=LIMIT))["rows"] == [{"a": 42}]
    assert len((await data.execute(many, []))["rows"]) == 100


async def test_a_sqlite_value_past_the_limit_is_refused_by_sqlite_itself(
    data: SqliteData,
) -> None:
    # zeroblob(900 MB) would be made whole (and its hex twice that) before any row check.
    with pytest.raises(SizeLimitError, match=r"a value in the statement is larger than 1000000"):
        await data.execute("SELECT zeroblob(900000000) AS b", [], max_bytes=LIMIT)
    with pytest.raises(SizeLimitError, match="a value in the statement"):
        await data.execute("SELECT length(zeroblob(2000000)) AS n", [], max_bytes=LIMIT)
    # Under the limit, and without one, values are as before.
    small = await data.execute("SELECT length(zeroblob(1000)) AS n", [], max_bytes=LIMIT)
    assert small["rows"] == [{"n": 1000}]
    assert (await data.execute("SELECT length(zeroblob(2000000)) AS n", []))["rows"] == [
        {"n": 2000000}
    ]


async def test_a_result_within_the_limit_is_whole(data: SqliteData) -> None:
    query = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000) "
        "SELECT x, 'row ' || x AS label FROM c"
    )
    result = await data.execute(query, [], max_bytes=LIMIT)
    assert result["rows"][-1] == {"x": 1000, "label": "row 1000"}
    assert len(result["rows"]) == 1000


PEAK_SCRIPT = """
import asyncio, json, resource, sys
from engine.core.data import PostgresData, SqliteData
from engine.core.errors import SizeLimitError

kind, target, sql, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    data = SqliteData(target) if kind == "sqlite" else PostgresData(target, max_size=1)
    await data.execute("SELECT 1 AS warm", [])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        await data.execute(sql, [], max_bytes=limit)
        error = None
    except SizeLimitError as exc:
        error = str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await data.aclose()
    print(json.dumps({"error": error, "growth_mb": (after - before) / 1024}))

asyncio.run(main())
"""


def peak_growth(kind: str, target: str, sql: str, limit: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, kind, target, sql, str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=root,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# 40 rows of 8 MB: 320 MB of values (640 MB as hex) that used to be read whole.
BIG_ROWS = 40
BIG_VALUE = 8_000_000


def test_a_sqlite_result_past_the_limit_stops_before_it_fills_memory(tmp_path: Path) -> None:
    path = tmp_path / "owner.sqlite3"
    sqlite3.connect(path).close()
    sql = (
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {BIG_ROWS}) "  # noqa: S608 - constants
        f"SELECT zeroblob({BIG_VALUE}) AS b FROM c"
    )
    measured = peak_growth("sqlite", str(path), sql, DEFAULT_MAX_OUTPUT_BYTES)
    assert measured["error"] == (
        f"the block's output is larger than {DEFAULT_MAX_OUTPUT_BYTES} bytes "
        "(KLYNTOS_MAX_OUTPUT_BYTES)"
    )
    # About the limit plus one row converted (its bytes and their hex): far from 320 MB.
    assert measured["growth_mb"] < 150, measured


def owner_conninfo(django_user_model: Any, name: str) -> str:
    from django.db import connections

    from engine.config import data_connection
    from engine.core.data import PostgresData

    try:
        owner = django_user_model.objects.create_user(name)
        configured = data_connection(owner.pk)  # provisions the owner's schema and role
    finally:
        connections.close_all()
    # As the other PostgreSQL tests of the data layer: `make test` runs on PostgreSQL, and a
    # test that skipped would pass in CI without running.
    assert isinstance(configured, PostgresData), "DATA_DATABASE_URL must be PostgreSQL here"
    return str(configured._conninfo)


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
def test_a_postgres_result_past_the_limit_stops_before_it_fills_memory(
    django_user_model: Any,
) -> None:
    conninfo = owner_conninfo(django_user_model, "big-result")
    sql = f"SELECT repeat('x', {BIG_VALUE}) AS t FROM generate_series(1, {BIG_ROWS})"  # noqa: S608
    measured = peak_growth("postgresql", conninfo, sql, DEFAULT_MAX_OUTPUT_BYTES)
    assert measured["error"] == (
        f"the block's output is larger than {DEFAULT_MAX_OUTPUT_BYTES} bytes "
        "(KLYNTOS_MAX_OUTPUT_BYTES)"
    )
    assert measured["growth_mb"] < 150, measured


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_a_postgres_result_past_the_limit_fails_and_the_connection_serves_on(
    django_user_model: Any,
) -> None:
    from asgiref.sync import sync_to_async

    from engine.core.data import PostgresData

    conninfo = await sync_to_async(owner_conninfo)(django_user_model, "limit-then-serve")
    data = PostgresData(conninfo, max_size=1)
    try:
        many = "SELECT repeat('x', 20000) AS t FROM generate_series(1, 100)"
        with pytest.raises(SizeLimitError, match="the block's output is larger than 1000000"):
            await data.execute(many, [], max_bytes=LIMIT)
        assert len((await data.execute(many, []))["rows"]) == 100
        result = await data.execute("SELECT 6 * 7 AS a", [], max_bytes=LIMIT)
        assert result == {"rows": [{"a": 42}], "rowcount": 1}
        # Statements without rows still say how many they changed.
        insert = (
            "INSERT INTO enriched_leads (lead_id, name, company, title, email, budget_estimate,"
            " urgency_level, linkedin_url, enriched_at) SELECT v, 'm', '', '', '', '', '', '',"
            " now() FROM (VALUES ('a'), ('b')) AS x(v)"
        )
        assert (await data.execute(insert, []))["rowcount"] == 2
        update = "UPDATE enriched_leads SET name = 'n'"
        assert (await data.execute(update, [], max_bytes=LIMIT))["rowcount"] == 2
        returned = await data.execute(
            "DELETE FROM enriched_leads RETURNING lead_id, name", [], max_bytes=LIMIT
        )
        assert sorted(returned["rows"], key=str) == [
            {"lead_id": "a", "name": "n"},
            {"lead_id": "b", "name": "n"},
        ]
        assert returned["rowcount"] == 2
        assert (await data.execute("SELECT lead_id FROM enriched_leads", []))["rows"] == []
    finally:
        await data.aclose()
