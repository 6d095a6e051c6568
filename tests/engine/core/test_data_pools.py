"""Per-owner data connections: shared by an owner's runs, at most `limit` kept open, the
least recently used idle one closed first, none closed while in use."""

from __future__ import annotations

from pathlib import Path

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
