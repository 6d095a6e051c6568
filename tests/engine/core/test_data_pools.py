"""Per-owner data connections: shared by an owner's runs, at most `limit` kept open, the
least recently used idle one closed first, none closed while in use."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.core.data import SqliteData
from engine.core.data_pools import DataPools, DataSource


class Opened:
    """Real SQLite connections, one file per owner, with a record of what was opened/closed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.opened: list[str] = []
        self.closed: list[str] = []

    def source(self, owner: str) -> DataSource:
        record = self

        class Tracked(SqliteData):
            async def aclose(self) -> None:
                record.closed.append(owner)
                await super().aclose()

        def open_connection() -> SqliteData:
            self.opened.append(owner)
            return Tracked(str(self.directory / f"{owner}.sqlite3"))

        return DataSource(owner, open_connection)


@pytest.fixture
def files(tmp_path: Path) -> Opened:
    return Opened(tmp_path)


async def test_an_owners_runs_share_one_connection(files: Opened) -> None:
    pools = DataPools(4)
    first, second = await pools.lease(files.source("a")), await pools.lease(files.source("a"))
    assert (await first.execute("SELECT 1 AS one", []))["rows"] == [{"one": 1}]
    assert (await second.execute("SELECT 2 AS two", []))["rows"] == [{"two": 2}]
    assert files.opened == ["a"]
    await first.aclose()
    await first.aclose()  # idempotent: hands back once
    await second.aclose()
    assert files.closed == [] and pools.keys() == ["a"]  # kept idle for the next run
    with pytest.raises(RuntimeError, match="handed back"):
        await first.execute("SELECT 1", [])
    await pools.aclose()
    assert files.closed == ["a"]


async def test_past_the_limit_the_least_recently_used_idle_one_is_closed(files: Opened) -> None:
    pools = DataPools(2)
    for owner in ["a", "b"]:
        await (await pools.lease(files.source(owner))).aclose()
    await (await pools.lease(files.source("a"))).aclose()  # a is now the most recent
    await (await pools.lease(files.source("c"))).aclose()
    assert files.closed == ["b"] and pools.keys() == ["a", "c"]
    await pools.aclose()


async def test_a_connection_in_use_is_never_closed(files: Opened) -> None:
    pools = DataPools(1)
    a = await pools.lease(files.source("a"))
    b = await pools.lease(files.source("b"))  # over the limit while both run
    assert files.closed == [] and len(pools) == 2
    assert (await a.execute("SELECT 'a' AS x", []))["rows"] == [{"x": "a"}]
    await a.aclose()  # now idle and least recent: closed
    assert files.closed == ["a"] and pools.keys() == ["b"]
    await b.aclose()
    assert files.closed == ["a"] and pools.keys() == ["b"]
    await pools.aclose()


async def test_a_loop_that_ends_with_its_runs_keeps_nothing_open(files: Opened) -> None:
    pools = DataPools(4, keep_idle=False)
    lease = await pools.lease(files.source("a"))
    await lease.aclose()
    assert files.closed == ["a"] and len(pools) == 0


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DataPools(0)


class Preparing:
    """A source's `prepare` that waits for `go` (on its thread) and records what happened."""

    def __init__(self, fail_first: bool = False) -> None:
        self.began = threading.Event()
        self.go = threading.Event()
        self.calls = 0
        self.fail_first = fail_first
        self.events: list[str] = []

    def __call__(self) -> None:
        self.calls += 1
        self.events.append(f"prepare on {threading.current_thread().name}")
        self.began.set()
        self.go.wait(30)
        if self.fail_first and self.calls == 1:
            raise RuntimeError("provisioning refused")
        self.events.append("prepared")


def prepared_source(files: Opened, owner: str, prepare: Preparing) -> DataSource:
    plain = files.source(owner)

    class Recorded(SqliteData):
        async def execute(self, sql: str, params: Sequence[Any]) -> dict[str, Any]:
            prepare.events.append(sql)
            return await super().execute(sql, params)

    def open_connection() -> SqliteData:
        plain.open()
        return Recorded(str(files.directory / f"{owner}.sqlite3"))

    return DataSource(owner, open_connection, prepare)


async def test_a_sources_preparation_starts_with_the_lease_and_only_statements_wait(
    files: Opened,
) -> None:
    # The run's start (its first upstream calls) does not wait for the owner's provisioning:
    # it runs on a thread from the lease on, and the first statement waits for it.
    prepare = Preparing()
    pools = DataPools(4)
    lease = await pools.lease(prepared_source(files, "a", prepare))
    await asyncio.to_thread(prepare.began.wait, 30)  # begun with no statement asked for
    statement = asyncio.ensure_future(lease.execute("SELECT 1 AS one", []))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not statement.done() and "SELECT 1 AS one" not in prepare.events
    prepare.go.set()
    assert (await statement)["rows"] == [{"one": 1}]
    assert prepare.events[1:] == ["prepared", "SELECT 1 AS one"]
    assert prepare.events[0] != f"prepare on {threading.current_thread().name}"
    assert (await lease.execute("SELECT 2 AS two", []))["rows"] == [{"two": 2}]
    assert prepare.calls == 1  # once per lease, not per statement
    await lease.aclose()
    await pools.aclose()


async def test_a_failed_preparation_fails_the_statement_and_the_next_one_tries_again(
    files: Opened,
) -> None:
    prepare = Preparing(fail_first=True)
    prepare.go.set()
    pools = DataPools(4)
    lease = await pools.lease(prepared_source(files, "a", prepare))
    with pytest.raises(RuntimeError, match="provisioning refused"):
        await lease.execute("SELECT 1 AS one", [])
    assert (await lease.execute("SELECT 1 AS one", []))["rows"] == [{"one": 1}]
    assert prepare.calls == 2 and prepare.events[-2:] == ["prepared", "SELECT 1 AS one"]
    await lease.aclose()
    await pools.aclose()


async def test_warming_a_connection_that_opens_nothing_ahead_changes_nothing(
    files: Opened,
) -> None:
    pools = DataPools(4)
    lease = await pools.lease(files.source("a"))
    await lease.warm(10)  # SQLite: one connection, nothing to open ahead
    assert (await lease.execute("SELECT 1 AS one", []))["rows"] == [{"one": 1}]
    assert files.opened == ["a"]
    await lease.aclose()
    await pools.aclose()
