"""The result cache in the database: one owner's `CachedResult` rows (engine/core/result_cache.py
says what is cached and how the key is made).

A run's cache costs a miss little more than no cache (on SQLite an all-miss run took twice the
time without: each lookup and each write was its own call on a pool thread that opened a
connection — a file open and `PRAGMA journal_mode=WAL` on SQLite — sent one statement and
closed it, and each write then queued for SQLite's one writer behind the run store's batches,
the step waiting for it):

- Reads and writes go through threads of the run's own (`DbThread`), each keeping its
  connection from call to call (a lookup never queues behind a write waiting for SQLite's
  one writer); `aclose()` (the run's `Services.aclose`) closes them.
- Lookups are batched: those asked while a query is in flight (a loop's window of items)
  are answered together by the next one, one `key IN (…)` for all of them; on PostgreSQL it
  is sent from the event loop itself (`LoopConnection`, no thread hop), on SQLite from up to
  `READ_LANES` read threads.
- Writes are off the step's path: `put` keeps the output in memory and returns; a writer
  task sends what has gathered as one upsert in one transaction (the first one also deletes
  the owner's expired rows), and the next batch gathers while it runs. A lookup answers from
  what is not written yet; the executor waits for the writes before the run's end
  (`Executor.cache_written`), so a run started after it finds them; `aclose()` writes what is
  left.

A failing read is a miss and a failing write is logged: the cache never fails a step.
Expired rows are never answered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from engine.core.bounded import json_size
from engine.core.result_cache import Cached
from engine.db_calls import DbThread
from engine.loop_connection import LoopConnection
from engine.models import CachedResult

log = logging.getLogger(__name__)

T = TypeVar("T")

# Lookups read on up to this many threads at once: one that is asked while every lane has a
# query in flight waits for the next query of the first lane free, with the others asked
# meanwhile.
READ_LANES = 2
# The most keys one lookup query names (SQLite binds at most 32,766 values; far under it).
LOOKUP_BATCH = 500


@dataclass(frozen=True, slots=True)
class _Entry:
    block_type: str
    cached: Cached
    ttl: float


class DbResultCache:
    def __init__(self, owner_id: Any) -> None:
        self.owner_id = owner_id
        self.max_ttl = float(settings.KLYNTOS_RESULT_CACHE_MAX_TTL)
        self.max_bytes = int(settings.KLYNTOS_RESULT_CACHE_MAX_BYTES)
        self._pruned = False
        # Reads and writes on a thread each: a lookup never queues behind a write waiting
        # for SQLite's one writer.
        self._threads: dict[str, DbThread] = {}
        # Lookups waiting for the next query, by key.
        self._asked: dict[str, list[asyncio.Future[Cached | None]]] = {}
        # The lookups in flight, by the lane (thread) each reads on.
        self._readers: dict[int, asyncio.Task[None]] = {}
        # Outputs not written yet (the next batch), and the batch being written.
        self._unwritten: dict[str, _Entry] = {}
        self._writing: dict[str, _Entry] = {}
        self._writer: asyncio.Task[None] | None = None
        # PostgreSQL: lookups sent from the event loop itself (engine/loop_connection.py).
        self._loop_connection: LoopConnection | None = None

    # -- the executor's side -------------------------------------------------------------

    async def get(self, key: str) -> Cached | None:
        entry = self._unwritten.get(key) or self._writing.get(key)
        if entry is not None:  # kept by this run, not written yet
            return entry.cached
        future: asyncio.Future[Cached | None] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(key, []).append(future)
        if len(self._readers) < READ_LANES:
            lane = next(n for n in range(READ_LANES) if n not in self._readers)
            self._readers[lane] = asyncio.ensure_future(self._read(lane))
        return await future

    async def put(
        self, key: str, block_type: str, output: Any, usage: list[dict[str, Any]], ttl: float
    ) -> None:
        if json_size(output) > self.max_bytes:
            return
        entry = _Entry(block_type, Cached(output, list(usage)), min(ttl, self.max_ttl))
        self._unwritten.pop(key, None)  # the latest output of a key is the one written
        self._unwritten[key] = entry
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_all())

    async def flush(self) -> None:
        """Wait until every output `put` so far is written (or its write failed)."""
        while self._unwritten or self._writing:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.ensure_future(self._write_all())
            await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        """Write what is left, then close the thread and its connection."""
        try:
            await self.flush()
        finally:
            threads, self._threads = self._threads, {}
            loop_connection, self._loop_connection = self._loop_connection, None
            for thread in threads.values():
                await thread.aclose()
            if loop_connection is not None:
                await loop_connection.close()

    # -- the database's side ---------------------------------------------------------------

    async def _db(self, kind: str, fn: Callable[..., T], *args: Any) -> T:
        thread = self._threads.get(kind)
        if thread is None:
            thread = self._threads[kind] = DbThread(f"result-cache-{kind}")
        return await thread.call(fn, *args)

    async def _read(self, lane: int) -> None:
        try:
            await self._read_all(lane)
        finally:
            self._readers.pop(lane, None)

    async def _read_all(self, lane: int) -> None:
        while self._asked:
            asked = dict(list(self._asked.items())[:LOOKUP_BATCH])
            for key in asked:
                del self._asked[key]
            found: dict[str, Cached] = {}
            try:
                found = await self._fetch(lane, list(asked))
            except Exception:
                log.warning("result cache: read failed, calling instead", exc_info=True)
            finally:  # every lookup is answered, a miss when the read failed or was cancelled
                for key, futures in asked.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(found.get(key))

    async def _write_all(self) -> None:
        while self._unwritten:
            self._writing, self._unwritten = self._unwritten, {}
            try:
                await self._db("write", self._upsert, self._writing)
            except Exception:
                log.warning("result cache: write failed, the outputs are not kept", exc_info=True)
            finally:
                self._writing = {}

    async def _fetch(self, lane: int, keys: list[str]) -> dict[str, Cached]:
        """One query, one round trip: the entries of `keys` that are there and not expired."""
        statement = self._lookup(keys)
        if connections[CachedResult.objects.db].vendor == "postgresql":
            if self._loop_connection is None:
                self._loop_connection = LoopConnection(CachedResult.objects.db)
            [(_, rows)] = await self._loop_connection.results([statement])
        else:
            rows = await self._db(f"read-{lane}", self._select, statement)
        return {key: Cached(_json(output), list(_json(usage) or [])) for key, output, usage in rows}

    def _lookup(self, keys: list[str]) -> tuple[str, tuple[Any, ...]]:
        """The lookup as Django compiles it (no connection is used for that)."""
        query = CachedResult.objects.filter(
            owner_id=self.owner_id, key__in=keys, expires_at__gt=timezone.now()
        ).values_list("key", "output", "usage")
        sql, params = query.query.sql_with_params()
        return sql, tuple(params)

    @staticmethod
    def _select(statement: tuple[str, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        with connections[CachedResult.objects.db].cursor() as cursor:
            cursor.execute(*statement)
            return list(cursor.fetchall())

    @transaction.atomic  # one transaction: on SQLite the writer's lock is taken once
    def _upsert(self, entries: dict[str, _Entry]) -> None:
        now = timezone.now()
        if not self._pruned:
            self._pruned = True
            CachedResult.objects.filter(owner_id=self.owner_id, expires_at__lte=now).delete()
        CachedResult.objects.bulk_create(
            [
                CachedResult(
                    owner_id=self.owner_id,
                    key=key,
                    block_type=entry.block_type,
                    output=entry.cached.output,
                    usage=entry.cached.usage,
                    expires_at=now + dt.timedelta(seconds=entry.ttl),
                )
                for key, entry in entries.items()
            ],
            update_conflicts=True,
            unique_fields=["owner", "key"],
            update_fields=["block_type", "output", "usage", "created_at", "expires_at"],
        )


def _json(value: Any) -> Any:
    """A JSON column as read by a plain cursor: its text (SQLite's, and PostgreSQL's through
    Django's adapters), or NULL."""
    return json.loads(value) if isinstance(value, str | bytes) else value
