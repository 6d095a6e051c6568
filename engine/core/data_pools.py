"""Per-owner data connections shared by that owner's runs, a bounded number open at once.

Each owner's database blocks connect as that owner's own role (or to their own SQLite file),
so connections cannot be shared between owners: one `DataConnection` (a psycopg pool, or a
SQLite connection on its thread) per owner, leased by each of their runs. At most `limit`
stay open; when one more is needed the least recently used idle one is closed. Connections
in use are never closed, so while more than `limit` owners are running at the same moment
the count runs over until their runs end.

A source may need work before its first statement (an owner's provisioning: blocking ORM
work). It starts on a thread when a run first leases the source and only the first
statement waits for it, so a run's first steps — its first upstream calls — do not.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.core.data import DataConnection
from engine.core.sqlrefs import Dialect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """Where one owner's data is: `key` names it (equal keys share a connection) and `open`
    builds an unopened connection to it (connecting happens on first use)."""

    key: str
    open: Callable[[], DataConnection]
    # Blocking work the first statement needs done (provisioning the owner's schema or
    # file): run on a thread from the first lease on; None when there is nothing to do.
    prepare: Callable[[], None] | None = None


@dataclass
class _Entry:
    connection: DataConnection
    leases: int = 0
    prepare: Callable[[], None] | None = None
    preparing: asyncio.Future[None] | None = None

    def start_preparing(self) -> asyncio.Future[None] | None:
        """On a thread, unless it runs already or is done; a failed attempt starts again.
        The attempt under way (None: nothing to prepare)."""
        if self.prepare is None:
            return None
        running = self.preparing
        if running is not None and not (
            running.done() and (running.cancelled() or running.exception() is not None)
        ):
            return running
        self.preparing = asyncio.ensure_future(asyncio.to_thread(self.prepare))
        self.preparing.add_done_callback(_report_failure)
        return self.preparing

    async def prepared(self) -> None:
        """Once the first statement may run (raises what preparing raised)."""
        preparing = self.start_preparing()
        if preparing is None:
            return
        # Shielded: a statement given up on (a timeout) does not stop it for the others.
        await asyncio.shield(preparing)
        if self.preparing is preparing:
            self.prepare = self.preparing = None


def _report_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:  # retrieved: no stray warning
        log.warning("preparing a data connection failed: %r", done.exception())


class DataPools:
    """All on one event loop: leases and releases never run concurrently with each other."""

    def __init__(self, limit: int, *, keep_idle: bool = True) -> None:
        if limit < 1:
            raise ValueError("the data connection limit must be at least 1")
        self.limit = limit
        # A process whose loop ends with the run (the CLI, a test) keeps nothing idle.
        self.keep_idle = keep_idle
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """Open connections, least recently used first."""
        return list(self._entries)

    async def lease(self, source: DataSource) -> DataLease:
        key = source.key
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(source.open())
        if source.prepare is not None and entry.prepare is None:
            entry.prepare = source.prepare  # each run's lease prepares (idempotent work)
        entry.start_preparing()
        self._entries.move_to_end(key)
        entry.leases += 1
        await self._evict()
        return DataLease(self, key, entry)

    async def _release(self, key: str) -> None:
        entry = self._entries[key]
        entry.leases -= 1
        if entry.leases == 0 and not self.keep_idle:
            del self._entries[key]
            await entry.connection.aclose()
        await self._evict()

    async def _evict(self) -> None:
        while len(self._entries) > self.limit:
            idle = next((k for k, e in self._entries.items() if e.leases == 0), None)
            if idle is None:
                return  # every one is in use: closed as their runs end
            entry = self._entries.pop(idle)
            await entry.connection.aclose()

    async def aclose(self) -> None:
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            await entry.connection.aclose()


class DataLease:
    """One run's hold on its owner's connection; closing it hands the connection back."""

    def __init__(self, pools: DataPools, key: str, entry: _Entry) -> None:
        self._pools, self._key, self._entry = pools, key, entry
        self.dialect: Dialect = entry.connection.dialect
        self._released = False

    async def execute(
        self, sql: str, params: Sequence[Any], *, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """`max_bytes`: the block's output limit, held while the result is read."""
        if self._released:
            raise RuntimeError("this data connection was handed back")
        await self._entry.prepared()
        if max_bytes is None:
            return await self._entry.connection.execute(sql, params)
        return await self._entry.connection.execute(sql, params, max_bytes=max_bytes)

    async def warm(self, connections: int) -> None:
        """Have `connections` statements' worth of the connection ready, once prepared
        (a connection that opens nothing ahead, SQLite's, ignores it)."""
        warm = getattr(self._entry.connection, "warm", None)
        if warm is None or self._released:
            return
        await self._entry.prepared()
        await warm(connections)

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            await self._pools._release(self._key)
