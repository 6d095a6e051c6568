"""Slot leases in PostgreSQL: caps held across every worker (engine/core/slots.py's `Slots`).

A key (`loop:<run>:<loop>:<enclosing item>`, `provider:<host>`) has `cap` slots, rows of
`engine_slot` (`Slot`) made as the key first needs them. Taking one is one statement: an
UPDATE of the lowest free row below the cap, picked `FOR UPDATE SKIP LOCKED` (so two takers
never pick the same row and never wait for each other's locks), and — when every existing
row is held — an INSERT of the lowest missing number in the same statement (`ON CONFLICT DO
NOTHING`: two processes making the same row, one gets it); a take that gets nothing marks
the key wanted in the same statement (its row of number -1, for `WANTED_POLLS` polls: a
waiter tries again at least once a poll, so the mark lasts while anyone waits). Giving it
back is one statement that also NOTIFYs `klyntos_slots` with the key's hash when the key is
wanted (a NOTIFY serialises commits: slots nobody waits for cost none). A slot is free when its owner is empty
or its lease ran out: each process renews every slot it holds with one UPDATE per
KLYNTOS_SLOT_LEASE_SECONDS / 3, so a process killed with -9 frees its slots when their
lease ends.

A holder that finds nothing free waits in line behind the other holders of this process for
the same key; the head of the line tries again when a NOTIFY for its key arrives (one
listening connection per process) or a slot of the key is given back here, and otherwise
every 50 ms doubling up to KLYNTOS_SLOT_POLL_SECONDS (a slot freed by a lease running out
sends no NOTIFY). Statements run on a psycopg async pool of their own
(KLYNTOS_SLOT_CONNECTIONS), never on the event loop's thread's blocking calls.

Rows free for longer than `GC_AFTER` are deleted by the heartbeat now and then, so run keys
do not pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import socket
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg import OperationalError

from engine.core.slots import Notice

log = logging.getLogger(__name__)

CHANNEL = "klyntos_slots"
FIRST_POLL = 0.05
GC_AFTER = 600.0  # seconds a row stays once free (or once its lease ran out)
GC_EVERY = 60.0
GC_BATCH = 5000
# A miss marks its key wanted for this many polls (a waiter tries at least once a poll, so
# the mark lasts while anyone waits): give-backs NOTIFY only keys someone waits for.
WANTED_POLLS = 3
# Takes that may fail in a row (connection lost, pool exhausted) before the hold fails.
MAX_FAILURES = 10

TAKE = """
WITH taken AS (
    UPDATE engine_slot SET owner = %(owner)s, process = %(process)s,
        expires = now() + %(lease)s * interval '1 second'
    WHERE (key, number) = (
        SELECT key, number FROM engine_slot
        WHERE key = %(key)s AND number >= 0 AND number < %(cap)s
          AND (owner = '' OR expires < now())
        ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    RETURNING number
), made AS (
    INSERT INTO engine_slot (key, number, owner, process, expires)
    SELECT %(key)s, n, %(owner)s, %(process)s, now() + %(lease)s * interval '1 second'
    FROM generate_series(0, %(cap)s - 1) AS n
    WHERE NOT EXISTS (SELECT 1 FROM taken)
      AND NOT EXISTS (SELECT 1 FROM engine_slot s WHERE s.key = %(key)s AND s.number = n)
    ORDER BY n LIMIT 1
    ON CONFLICT DO NOTHING
    RETURNING number
), wanted AS (
    INSERT INTO engine_slot (key, number, owner, process, expires)
    SELECT %(key)s, -1, '', '', now() + %(wanted)s * interval '1 second'
    WHERE NOT EXISTS (SELECT 1 FROM taken) AND NOT EXISTS (SELECT 1 FROM made)
    ON CONFLICT (key, number) DO UPDATE SET expires = EXCLUDED.expires
)
SELECT number FROM taken UNION ALL SELECT number FROM made
"""

GIVE_BACK = """
WITH freed AS (
    UPDATE engine_slot SET owner = '', process = '', expires = now()
    WHERE key = %(key)s AND number = %(number)s AND owner = %(owner)s
    RETURNING key
)
SELECT pg_notify(%(channel)s, %(hash)s) FROM freed
WHERE EXISTS (
    SELECT 1 FROM engine_slot WHERE key = %(key)s AND number = -1 AND expires > now()
)
"""

RENEW = """
UPDATE engine_slot SET expires = now() + %(lease)s * interval '1 second'
WHERE process = %(process)s AND owner <> '' AND owner = ANY(%(owners)s)
"""

COLLECT = """
DELETE FROM engine_slot WHERE (key, number) IN (
    SELECT key, number FROM engine_slot
    WHERE (owner = '' OR expires < now()) AND expires < now() - %(age)s * interval '1 second'
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
"""


def key_hash(key: str) -> str:
    """What a NOTIFY carries for a key (bounded, whatever the key's length)."""
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()[:16]


def conninfo() -> str:
    """The default database's connection string (the one the job queue uses too)."""
    from psycopg.conninfo import make_conninfo

    db = connections["default"].settings_dict
    params = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
    }
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


@dataclass
class SlotStats:
    """Statements sent, by kind (bench (c): statements per item)."""

    takes: int = 0  # take attempts (one statement each)
    taken: int = 0
    gives: int = 0  # give-backs (one statement each)
    renewals: int = 0
    collections: int = 0
    waits: int = 0  # holds that had to wait

    @property
    def statements(self) -> int:
        return self.takes + self.gives + self.renewals + self.collections


@dataclass
class _Line:
    """This process's holders waiting for one key: the head tries, the others wait their turn."""

    turns: deque[asyncio.Future[None]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class ClusterSlots:
    """`engine.core.slots.Slots` on PostgreSQL, for one event loop of one process."""

    def __init__(
        self,
        conninfo: str,
        *,
        lease: float = 30.0,
        poll: float = 1.0,
        connections: int = 4,
        name: str = "",
    ) -> None:
        self._conninfo = conninfo
        self.lease = lease
        self.poll = poll
        self._size = connections
        host = socket.gethostname()[:80]
        self.process = name or f"{host}:{os.getpid()}:{secrets.token_hex(6)}"
        self._tokens = itertools.count(1)
        self._live: set[str] = set()  # the owner tokens of this process's holds
        self._lines: dict[str, _Line] = {}
        self._lines_by_hash: dict[str, _Line] = {}
        self.stats = SlotStats()
        self._pool: Any = None
        self._open_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._failures = 0  # takes failed in a row (the database away)

    # -- the contract -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self, key: str, cap: int, notice: Notice | None = None) -> AsyncIterator[int]:
        if cap < 1:
            raise ValueError(f"a cap is at least 1, got {cap}")
        number, owner = await self.acquire(key, cap, notice)
        try:
            yield number
        finally:
            await _finish(self.release(key, number, owner))

    async def acquire(self, key: str, cap: int, notice: Notice | None = None) -> tuple[int, str]:
        """Wait for one of the key's slots; (its number, the hold's owner token)."""
        await self._open()
        owner = f"{self.process}:{next(self._tokens)}"
        self._live.add(owner)  # renewed from the moment the statement may take it
        try:
            if key not in self._lines:  # nobody here waits for this key: try at once
                number = await self._take(key, cap, owner)
                if number is not None:
                    return number, owner
            return await self._wait(key, cap, owner, notice), owner
        except BaseException:
            self._live.discard(owner)
            raise

    async def release(self, key: str, number: int, owner: str) -> None:
        self._live.discard(owner)  # no longer renewed, even if the statement fails
        params = {
            "key": key,
            "number": number,
            "owner": owner,
            "channel": CHANNEL,
            "hash": key_hash(key),
        }
        self.stats.gives += 1
        try:
            await self._execute(GIVE_BACK, params)
        except Exception:  # its lease runs out instead
            log.exception("could not give back slot %s of %s", number, key)
        line = self._lines.get(key)
        if line is not None:
            line.wake.set()  # a waiter here need not wait for the NOTIFY

    def holding(self) -> int:
        return len(self._live)

    # -- waiting --------------------------------------------------------------------------

    async def _wait(self, key: str, cap: int, owner: str, notice: Notice | None) -> int:
        loop = asyncio.get_running_loop()
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
            self._lines_by_hash[key_hash(key)] = line
        turn: asyncio.Future[None] = loop.create_future()
        line.turns.append(turn)
        if line.turns[0] is turn:
            turn.set_result(None)
        self.stats.waits += 1
        if notice is not None:
            notice.waiting(key, cap)
        started = loop.time()
        got = False
        try:
            await turn
            delay = FIRST_POLL
            while True:
                line.wake.clear()
                number = await self._take(key, cap, owner)
                if number is not None:
                    got = True
                    return number
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(line.wake.wait(), delay)
                delay = min(delay * 2, self.poll)
        finally:
            with contextlib.suppress(ValueError):
                line.turns.remove(turn)
            if line.turns:
                head = line.turns[0]
                if not head.done():
                    head.set_result(None)  # the next one's turn (maybe a slot is free too)
            elif self._lines.get(key) is line:
                del self._lines[key]
                self._lines_by_hash.pop(key_hash(key), None)
            if notice is not None:
                notice.waited(key, loop.time() - started, got)

    def _notified(self, payload: str) -> None:
        line = self._lines_by_hash.get(payload)
        if line is not None:
            line.wake.set()

    # -- statements -----------------------------------------------------------------------

    async def _take(self, key: str, cap: int, owner: str) -> int | None:
        params = {
            "key": key,
            "cap": cap,
            "owner": owner,
            "process": self.process,
            "lease": self.lease,
            "wanted": self.poll * WANTED_POLLS,
        }
        self.stats.takes += 1
        task = asyncio.ensure_future(self._execute(TAKE, params, fetch=True))
        try:
            rows = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The statement may still take a slot: give it back once it has.
            with contextlib.suppress(Exception):
                taken = await task
                for (number,) in taken or ():
                    await self.release(key, number, owner)
            raise
        except OperationalError:  # the database is away: try again like a miss, a while
            self._failures += 1
            if self._failures > MAX_FAILURES:
                raise
            log.warning("could not take a slot of %s; trying again", key, exc_info=True)
            return None
        self._failures = 0
        if not rows:
            return None
        self.stats.taken += 1
        return int(rows[0][0])

    async def _execute(self, sql: str, params: dict[str, Any], fetch: bool = False) -> Any:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, params, prepare=True)
            return await cursor.fetchall() if fetch else cursor.rowcount

    # -- life -------------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._pool is not None:
            return
        async with self._open_lock:
            if self._pool is not None:
                return
            if self._closed:
                raise RuntimeError("these slots are closed")
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self._size,
                open=False,
                # A slot is a lease: a commit lost in a server crash only frees it sooner.
                kwargs={"autocommit": True, "options": "-c synchronous_commit=off"},
                name="klyntos-slots",
            )
            await pool.open(wait=True)
            self._pool = pool
            self._tasks = [
                asyncio.create_task(self._listen(), name="klyntos-slots-listen"),
                asyncio.create_task(self._heartbeat(), name="klyntos-slots-heartbeat"),
            ]

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for notify in conn.notifies():
                        self._notified(notify.payload)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception:  # waiters poll meanwhile
                log.warning("slot notifications lost; listening again", exc_info=True)
            await asyncio.sleep(self.poll)

    async def _heartbeat(self) -> None:
        collected = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.renew()
                now = asyncio.get_running_loop().time()
                if now - collected >= GC_EVERY:
                    collected = now
                    await self.collect()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("slot heartbeat failed", exc_info=True)

    async def renew(self) -> int:
        """Every hold of this process gets a whole lease again (one statement); how many."""
        if not self._live:
            return 0
        await self._open()
        self.stats.renewals += 1
        renewed: int = await self._execute(
            RENEW, {"lease": self.lease, "process": self.process, "owners": list(self._live)}
        )
        return renewed

    async def collect(self, age: float = GC_AFTER) -> int:
        """Delete rows free (or whose lease ran out) for longer than `age` seconds, a batch
        at most; how many."""
        await self._open()
        self.stats.collections += 1
        deleted: int = await self._execute(COLLECT, {"age": age, "batch": GC_BATCH})
        return deleted

    async def aclose(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _finish(coro: Any) -> None:
    """Run `coro` to its end even when the caller is cancelled meanwhile (a give-back)."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClusterSlots] = (
    weakref.WeakKeyDictionary()
)


def slots_for_loop() -> ClusterSlots:
    """The running loop's slot holder (one pool, one listener, one heartbeat per loop),
    from the settings."""
    loop = asyncio.get_running_loop()
    slots = _by_loop.get(loop)
    if slots is None:
        slots = _by_loop[loop] = ClusterSlots(
            conninfo(),
            lease=settings.KLYNTOS_SLOT_LEASE_SECONDS,
            poll=settings.KLYNTOS_SLOT_POLL_SECONDS,
            connections=settings.KLYNTOS_SLOT_CONNECTIONS,
        )
    return slots


def close_loop_slots(loop: asyncio.AbstractEventLoop | None, timeout: float = 30) -> None:
    """Close the slot holder of `loop` (running on another thread): before dropping a
    database, at shutdown."""
    slots = _by_loop.pop(loop, None) if loop is not None else None
    if loop is not None and slots is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(slots.aclose(), loop).result(timeout)


def cluster_wide() -> bool:
    """Caps hold across processes when runs execute on workers."""
    return bool(settings.KLYNTOS_EXECUTOR == "workers" and settings.ON_POSTGRESQL)


def check_settings() -> None:
    """ValueError naming a KLYNTOS_SLOT_* setting that cannot work."""
    for name in ("KLYNTOS_SLOT_LEASE_SECONDS", "KLYNTOS_SLOT_POLL_SECONDS"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"{name} must be a positive number of seconds")
    if settings.KLYNTOS_SLOT_POLL_SECONDS > settings.KLYNTOS_SLOT_LEASE_SECONDS:
        raise ValueError("KLYNTOS_SLOT_POLL_SECONDS must not be longer than the lease")
    if not 1 <= settings.KLYNTOS_SLOT_CONNECTIONS <= 100:
        raise ValueError("KLYNTOS_SLOT_CONNECTIONS must be between 1 and 100")
