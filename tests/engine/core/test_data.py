"""The embedded SQLite data connection lets workflows read and write rows, nothing more."""

import asyncio
import datetime as dt
import decimal
import ipaddress
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from engine.core.data import SqliteData, json_safe


@pytest.fixture
async def data(tmp_path: Path) -> SqliteData:
    other = tmp_path / "app.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE auth_user (username text)").connection.commit()
    path = tmp_path / "data.sqlite3"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE enriched_leads (lead_id text unique, name text, enriched_at text)")
    setup.commit()
    setup.close()
    connection = SqliteData(str(path))
    yield connection
    await connection.aclose()


async def test_rows_can_be_written_and_read(data: SqliteData) -> None:
    upsert = (
        "INSERT INTO enriched_leads (lead_id, name, enriched_at) VALUES (?, ?, NOW()) "
        "ON CONFLICT (lead_id) DO UPDATE SET name = excluded.name, enriched_at = excluded.enriched_at"
    )
    assert (await data.execute(upsert, ["a", "Ada"]))["rowcount"] == 1
    await data.execute(upsert, ["a", "Ada L."])
    rows = (await data.execute("SELECT lead_id, name FROM enriched_leads", []))["rows"]
    assert rows == [{"lead_id": "a", "name": "Ada L."}]
    with_cte = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT count(*) AS c FROM n"
    assert (await data.execute(with_cte, []))["rows"] == [{"c": 3}]


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{app}' AS app",
        "VACUUM INTO '{tmp}/copy.sqlite3'",
        "PRAGMA table_info(enriched_leads)",
        "CREATE TABLE stolen (x)",
        "DROP TABLE enriched_leads",
        "SELECT load_extension('x')",
        "DELETE FROM sqlite_master",
    ],
)
async def test_everything_else_is_refused(data: SqliteData, tmp_path: Path, sql: str) -> None:
    with pytest.raises(
        sqlite3.DatabaseError, match="not authorized|authorization denied|may not be modified"
    ):
        statement = sql.replace("{app}", str(tmp_path / "app.sqlite3")).replace(
            "{tmp}", str(tmp_path)
        )
        await data.execute(statement, [])
    assert not (tmp_path / "copy.sqlite3").exists()


RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"


async def longest_stall_while(work: Any) -> float:
    """Run `work` and measure the longest time the event loop could not run a ticker."""
    longest = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest = max(longest, now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await work
    finally:
        stop.set()
        await ticking
    return longest


async def test_a_statement_past_its_deadline_is_interrupted_and_the_next_one_runs(
    data: SqliteData,
) -> None:
    async def runaway() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await data.execute(RUNAWAY, [])

    assert await longest_stall_while(runaway()) < 0.25
    started = time.monotonic()
    assert (await data.execute("SELECT 6 * 7 AS answer", []))["rows"] == [{"answer": 42}]
    assert time.monotonic() - started < 1  # the worker was free: the runaway was interrupted


async def test_closing_while_a_statement_runs_interrupts_it_without_blocking_the_loop(
    data: SqliteData,
) -> None:
    running = asyncio.create_task(data.execute(RUNAWAY, []))
    await asyncio.sleep(0.3)
    stall = await longest_stall_while(data.aclose())
    assert stall < 0.25
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        await running


def test_every_value_a_driver_returns_becomes_json() -> None:
    values = [
        dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
        dt.date(2024, 5, 1),
        dt.time(23, 59),
        dt.timedelta(days=1, hours=2),
        decimal.Decimal("8.50"),
        decimal.Decimal("12"),
        decimal.Decimal("3.14159265358979323846264338"),
        decimal.Decimal("1E+40"),
        decimal.Decimal("NaN"),
        decimal.Decimal("-Infinity"),
        float("nan"),
        float("inf"),
        b"\x00\xff",
        uuid.UUID(int=1),
        ipaddress.ip_interface("10.1.2.3/24"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_address("::1"),
        [decimal.Decimal("1.5"), [ipaddress.ip_address("10.0.0.1")]],
        ("1", "a"),
        {"k": uuid.UUID(int=2), 3: b"x"},
        object.__new__(type("Unknown", (), {"__str__": lambda self: "unknown!"})),
    ]
    safe = [json_safe(v) for v in values]
    assert json.loads(json.dumps(safe, allow_nan=False)) == [
        "2024-05-01T12:00:00+00:00",
        "2024-05-01",
        "23:59:00",
        "1 day, 2:00:00",
        8.5,
        12,
        "3.14159265358979323846264338",
        "10000000000000000000000000000000000000000",
        "NaN",
        "-Infinity",
        "NaN",
        "Infinity",
        "00ff",
        "00000000-0000-0000-0000-000000000001",
        "10.1.2.3/24",
        "10.0.0.0/8",
        "::1",
        [1.5, ["10.0.0.1"]],
        ["1", "a"],
        {"k": "00000000-0000-0000-0000-000000000002", "3": "78"},
        "unknown!",
    ]


def hold_write_lock(path: str) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode=WAL")  # as every data file is (readers never wait)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO enriched_leads (lead_id, name) VALUES ('held', 'by another')")
    return other


async def test_waiting_for_another_writers_lock_stops_when_the_caller_gives_up(
    data: SqliteData, tmp_path: Path
) -> None:
    """SQLite's own busy wait cannot be interrupted; ours can: a timed-out write does not
    keep the worker (and so the next block) waiting for the lock."""
    other = hold_write_lock(str(tmp_path / "data.sqlite3"))
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await data.execute("INSERT INTO enriched_leads (lead_id) VALUES ('mine')", [])
        started = time.monotonic()
        assert (await data.execute("SELECT 1 AS one", []))["rows"] == [{"one": 1}]
        assert time.monotonic() - started < 1
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_write_waits_for_another_writers_lock_then_succeeds(
    data: SqliteData, tmp_path: Path
) -> None:
    other = hold_write_lock(str(tmp_path / "data.sqlite3"))
    asyncio.get_running_loop().call_later(0.3, lambda: (other.execute("COMMIT"), other.close()))
    written = await data.execute("INSERT INTO enriched_leads (lead_id) VALUES ('mine')", [])
    assert written["rowcount"] == 1
    rows = (await data.execute("SELECT lead_id FROM enriched_leads ORDER BY lead_id", []))["rows"]
    assert rows == [{"lead_id": "held"}, {"lead_id": "mine"}]


def test_the_server_side_statement_bound_is_the_longest_block_timeout() -> None:
    from engine.blocks.base import COMMON_PROPERTIES
    from engine.core.data import STATEMENT_BOUND

    assert COMMON_PROPERTIES["timeout"]["maximum"] == STATEMENT_BOUND


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_a_postgres_statement_is_its_own_transaction_with_no_begin_before_it(
    django_user_model: Any,
) -> None:
    # Autocommit: no BEGIN and COMMIT round trips around each block's one statement.
    from asgiref.sync import sync_to_async
    from django.db import connections

    from engine.config import data_connection
    from engine.core.data import PostgresData

    def owner_connection() -> Any:
        try:
            owner = django_user_model.objects.create_user("autocommit")
            return data_connection(owner.pk)  # provisions the owner's schema and role
        finally:
            connections.close_all()

    configured = await sync_to_async(owner_connection)()
    assert isinstance(configured, PostgresData)
    data = PostgresData(configured._conninfo, max_size=1)  # one session for every statement
    try:
        # PostgreSQL runs VACUUM only outside a transaction block (the owner's role owns no
        # table, so it skips each with a warning and changes nothing).
        assert await data.execute("VACUUM", []) == {"rows": [], "rowcount": -1}
        # A transaction a statement leaves open ends with it, before the next statement.
        await data.execute("BEGIN", [])
        assert await data.execute("VACUUM", []) == {"rows": [], "rowcount": -1}
        assert (await data.execute("SELECT 6 * 7 AS answer", []))["rows"] == [{"answer": 42}]
    finally:
        await data.aclose()


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_a_postgres_pool_warmed_ahead_opens_that_many_connections_up_to_its_size(
    django_user_model: Any,
) -> None:
    # A loop's first statements find their connections open instead of queuing while the
    # pool grows one connection at a time.
    from asgiref.sync import sync_to_async
    from django.db import connections

    from engine.config import data_connection
    from engine.core.data import PostgresData

    def owner_connection() -> Any:
        try:
            owner = django_user_model.objects.create_user("warm")
            return data_connection(owner.pk)  # provisions the owner's schema and role
        finally:
            connections.close_all()

    configured = await sync_to_async(owner_connection)()
    assert isinstance(configured, PostgresData)
    data = PostgresData(configured._conninfo, max_size=4)
    try:
        await data.warm(3)
        pool = data._pool
        async with asyncio.timeout(30):  # a guard: they open in the background
            while True:
                if pool.get_stats().get("pool_available", 0) >= 3:
                    break
                await asyncio.sleep(0.01)
        await data.warm(10)  # never past the pool's size
        assert pool.get_stats()["pool_size"] == 4
        assert pool.min_size == 1  # idle ones close again as before
        assert (await data.execute("SELECT 6 * 7 AS answer", []))["rows"] == [{"answer": 42}]
    finally:
        await data.aclose()


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_no_setting_a_postgres_statement_makes_reaches_the_next_statement(
    django_user_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every statement is followed by a RESET ALL (a query's rows are streamed, which a
    # pipeline cannot carry); a query that failed was rolled back with what it SET. One
    # session for every statement, so whatever one left behind the next would see.
    from asgiref.sync import sync_to_async
    from django.db import connections
    from psycopg import AsyncCursor

    from engine.config import data_connection
    from engine.core.data import PostgresData

    def owner_connection() -> Any:
        try:
            owner = django_user_model.objects.create_user("session-reset")
            return data_connection(owner.pk)  # provisions the owner's schema and role
        finally:
            connections.close_all()

    configured = await sync_to_async(owner_connection)()
    assert isinstance(configured, PostgresData)
    data = PostgresData(configured._conninfo, max_size=1)
    sent: list[tuple[str, bool]] = []
    execute, stream = AsyncCursor.execute, AsyncCursor.stream

    async def recording(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((str(query), self.connection._pipeline is not None))
        return await execute(self, query, *args, **kwargs)

    async def streaming(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((str(query), self.connection._pipeline is not None))
        async for row in stream(self, query, *args, **kwargs):
            yield row

    monkeypatch.setattr(AsyncCursor, "execute", recording)
    monkeypatch.setattr(AsyncCursor, "stream", streaming)

    async def shown(name: str) -> Any:
        query = "SELECT current_setting(%s) AS v"
        return (await data.execute(query, [name]))["rows"][0]["v"]

    try:
        path, timeout = await shown("search_path"), await shown("statement_timeout")
        assert timeout == "1h"
        sent.clear()
        # A query that changes the session, written as SELECT: streamed, then reset.
        changed = await data.execute(
            "/* x */ (SELECT set_config('statement_timeout', '0', false) AS t)", []
        )
        assert changed["rows"] == [{"t": "0"}]
        assert sent == [
            ("/* x */ (SELECT set_config('statement_timeout', '0', false) AS t)", False),
            ("RESET ALL", False),
        ]
        assert await shown("statement_timeout") == "1h"
        # The same in a query that then fails: rolled back with its transaction.
        with pytest.raises(Exception, match="division by zero"):
            await data.execute("SELECT set_config('search_path', 'public', false), 1 / 0", [])
        assert await shown("search_path") == path
        # A SET is no query: it runs alone and the pool resets the session afterwards.
        sent.clear()
        await data.execute("SET statement_timeout = 0", [])
        assert await shown("statement_timeout") == "1h"
        assert [query for query, _ in sent] == [
            "SET statement_timeout = 0",
            "RESET ALL",
            "SELECT current_setting(%s) AS v",
            "RESET ALL",
        ]
        assert [pipelined for _, pipelined in sent] == [False, False, False, False]
        # A write without RETURNING has no rows to stream: its RESET ALL rides in its
        # pipeline, one round trip.
        sent.clear()
        update = "UPDATE enriched_leads SET name = name WHERE false"
        assert await data.execute(update, []) == {"rows": [], "rowcount": 0}
        assert sent == [(update, True), ("RESET ALL", True)]
        await data.execute("SET search_path = public", [])
        assert await shown("search_path") == path
        # A statement stopped midway (a block timeout): its connection is closed, not reused.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await data.execute(
                    "SELECT set_config('search_path', 'public', false), pg_sleep(5)", []
                )
        assert await shown("search_path") == path
        assert data._pool.get_stats().get("returns_bad", 0) >= 1
    finally:
        await data.aclose()
