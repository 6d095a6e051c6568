"""Slot leases in PostgreSQL: caps held across every worker (engine/core/slots.py's `Slots`).

A key (`loop:<run>:<loop>:<enclosing item>`, `provider:<host>`) has `cap` slots, rows of
`engine_slot` (`Slot`) made as the key first needs them. Taking one is one statement: an
UPDATE of the lowest free row below the cap, picked `FOR UPDATE SKIP LOCKED` (so two takers
never pick the same row and never wait for each other's locks), and — when every existing
row is held — an INSERT of the lowest missing number in the same statement (`ON CONFLICT DO
NOTHING`: two processes making the same row, one gets it); a take that gets nothing marks
the key wanted in the same statement (its row of number -1, for `WANTED_POLLS` polls: a
waiter tries again at least once a poll, so the mark lasts while anyone waits) and NOTIFYs
`klyntos_slots` that this process wants the key. A slot is free when its owner is empty or
its lease ran out: each process renews every slot it holds with one UPDATE per
KLYNTOS_SLOT_LEASE_SECONDS / 3, so a process killed with -9 frees its slots when their
lease ends.

A process keeps the slots it took: a hold that ends hands its slot to the next holder of
the same key in this process, or keeps it idle for `LINGER` seconds for the next one, so a
loop whose items follow each other on one worker takes a slot per item in flight, not per
item (bench w, s). Idle slots are given back in one statement (with a NOTIFY of the key's
hash when someone wants it), after `LINGER`, at close, and at once when another process
says it wants the key; for `WANTED_POLLS` polls after such a notice, this process's holds
of that key give their slot back as they end instead of keeping it, so the other process's
waiters get their turn.

A holder that finds nothing free waits in line behind the other holders of this process for
the same key; the head of the line tries again when a NOTIFY for its key arrives (one
listening connection per process), a slot of the key is handed over or given back here,
and otherwise every 50 ms doubling up to KLYNTOS_SLOT_POLL_SECONDS (a slot freed by a lease
running out sends no NOTIFY). Statements run on a psycopg async pool of their own
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
import secrets
import weakref
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg import OperationalError, sql

from engine.core.slots import Notice
from engine.polling import process_name

log = logging.getLogger(__name__)

CHANNEL = "klyntos_slots"
FIRST_POLL = 0.05
GC_AFTER = 600.0  # seconds a row stays once free (or once its lease ran out)
GC_EVERY = 60.0
# How often a closing ClusterSlots cancels again a task that has not ended (`aclose`).
STOP_RECHECK_SECONDS = 0.5
GC_BATCH = 5000
# A miss marks its key wanted for this many polls (a waiter tries at least once a poll, so
# the mark lasts while anyone waits): give-backs NOTIFY only keys someone waits for.
WANTED_POLLS = 3
# Takes that may fail in a row (connection lost, pool exhausted) before the hold fails.
MAX_FAILURES = 10
# Times a take that missed while this process's other takes of the key ran is tried again.
RACED_TAKES = 3
# Seconds a slot this process holds but nobody here uses is kept for the next holder.
LINGER = 0.25
# What a NOTIFY says: `<key hash>` a slot of the key was given back; `want:<key hash>:<process
# hash>` a process missed a take of the key.
WANT = "want:"

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
), missing AS (
    SELECT n, row_number() OVER (ORDER BY n) - 1 AS i, count(*) OVER () AS count
    FROM generate_series(0, %(cap)s - 1) AS n
    WHERE NOT EXISTS (SELECT 1 FROM taken)
      AND NOT EXISTS (SELECT 1 FROM engine_slot s WHERE s.key = %(key)s AND s.number = n)
), made AS (
    INSERT INTO engine_slot (key, number, owner, process, expires)
    SELECT %(key)s, n, %(owner)s, %(process)s, now() + %(lease)s * interval '1 second'
    FROM missing WHERE i = %(skip)s %% count
    ON CONFLICT DO NOTHING
    RETURNING number
), wanted AS (
    INSERT INTO engine_slot (key, number, owner, process, expires)
    SELECT %(key)s, -1, '', '', now() + %(wanted)s * interval '1 second'
    WHERE NOT EXISTS (SELECT 1 FROM taken) AND NOT EXISTS (SELECT 1 FROM made)
    ON CONFLICT (key, number) DO UPDATE SET expires = EXCLUDED.expires
    RETURNING key
)
SELECT number FROM taken UNION ALL SELECT number FROM made
UNION ALL SELECT -1 FROM (SELECT pg_notify(%(channel)s, %(want)s) AS told FROM wanted) AS miss
"""

# Any number of slots (of any keys) in one statement; a NOTIFY per key someone wants.
GIVE_BACK = """
WITH freed AS (
    UPDATE engine_slot AS s SET owner = '', process = '', expires = now()
    FROM unnest(%(keys)s::text[], %(numbers)s::int[], %(owners)s::text[]) AS g(key, number, owner)
    WHERE s.key = g.key AND s.number = g.number AND s.owner = g.owner
    RETURNING s.key
)
SELECT pg_notify(%(channel)s, left(md5(f.key), 16)) FROM (SELECT DISTINCT key FROM freed) AS f
WHERE EXISTS (
    SELECT 1 FROM engine_slot AS w WHERE w.key = f.key AND w.number = -1 AND w.expires > now()
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
    """Statements sent, by kind (bench (c): statements per item), and holds served here."""

    takes: int = 0  # take attempts (one statement each)
    taken: int = 0
    gives: int = 0  # give-back statements (each of any number of slots)
    given: int = 0  # slots given back
    reused: int = 0  # holds served by a slot this process kept (no statement)
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
        linger: float = LINGER,
    ) -> None:
        self._conninfo = conninfo
        self.lease = lease
        self.poll = poll
        self.linger = min(linger, poll)
        self._size = connections
        # This process's name, and one token more: each loop of a process holds its own.
        self.process = name or f"{process_name()}:{secrets.token_hex(3)}"
        self._want = f"{WANT}%s:{key_hash(self.process)}"  # what this process's misses say
        self._tokens = itertools.count(1)
        self._live: set[str] = set()  # the owner tokens of this process's slots (renewed)
        self._lines: dict[str, _Line] = {}
        self._lines_by_hash: dict[str, _Line] = {}
        # Slots this process holds that no hold uses: key → number → (owner, idle since).
        self._idle: dict[str, dict[int, tuple[str, float]]] = {}
        self._idle_by_hash: dict[str, str] = {}  # key hash → key, for keys with idle slots
        self._idle_now = asyncio.Event()  # set while `_idle` has anything
        self._held: Counter[str] = Counter()  # slots held here per key, in use or idle
        self._taking: dict[str, list[int]] = {}  # acquire's takes in flight (see there)
        # Key hash → until when another process waits for it (its holds here give back).
        self._contended: dict[str, float] = {}
        self.stats = SlotStats()
        self._pool: Any = None
        self._open_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._chores: set[asyncio.Task[None]] = set()  # give-backs asked for by a notice
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
            # Kept for the next holder here (no statement, no task), or given back.
            if not self._keep(key, number, owner):
                await _finish(self.release(key, number, owner))

    async def acquire(self, key: str, cap: int, notice: Notice | None = None) -> tuple[int, str]:
        """Wait for one of the key's slots; (its number, the hold's owner token)."""
        await self._open()
        if key not in self._lines:  # nobody here waits for this key: try at once
            kept = self._reuse(key, cap)
            if kept is not None:
                return kept
        tries = 0
        while key not in self._lines and self._held[key] < cap:
            owner = self._new_owner()
            # [takes of the key in flight here, takes begun while any was in flight]
            taking = self._taking.setdefault(key, [0, 0])
            taking[0] += 1
            taking[1] += 1
            started = taking[1]
            raced = taking[0] > 1  # another take of the key is in flight here
            try:
                number = await self._take(key, cap, owner, skip=taking[0] - 1)
            except BaseException:
                self._live.discard(owner)
                raise
            finally:
                raced = raced or taking[1] > started  # or one began meanwhile
                # ... and had every take in flight here succeeded, this one had room too.
                raced = raced and self._held[key] + taking[0] <= cap
                taking[0] -= 1
                if not taking[0]:
                    del self._taking[key]
            if number is not None:
                return number, owner
            self._live.discard(owner)
            # A miss that raced this process's own takes of the key (it picked the number
            # one of them made), while those and the slots held here leave room below the
            # cap, is tried again at once (a few times) rather than forming a line, whose
            # holders then each wait for a hand-over.
            tries += 1
            if not raced or tries > RACED_TAKES:
                break
        return await self._wait(key, cap, notice)

    async def release(self, key: str, number: int, owner: str) -> None:
        """The hold ends: its slot goes to the next holder here (kept for `linger` when
        nobody waits yet), or back to the database when another process wants the key."""
        if self._keep(key, number, owner):
            return
        line = self._lines.get(key)
        await self._give_back([(key, number, owner)])
        if line is not None:
            line.wake.set()  # a waiter here need not wait for the NOTIFY

    def _keep(self, key: str, number: int, owner: str) -> bool:
        """`release`'s common case, without awaiting: the slot is kept idle for the next
        holder here (the head of the key's line woken to take it). False: it must go back."""
        loop = asyncio.get_running_loop()
        hashed = key_hash(key)
        if (
            self._closed
            or owner not in self._live
            or self._contended.get(hashed, 0.0) > loop.time()
        ):
            return False
        self._idle.setdefault(key, {})[number] = (owner, loop.time())
        self._idle_by_hash[hashed] = key
        self._idle_now.set()
        line = self._lines.get(key)
        if line is not None:
            line.wake.set()  # the head of the line takes it
        return True

    def holding(self) -> int:
        """Holds in use (slots kept idle for the next holder are not)."""
        return len(self._live) - sum(len(idle) for idle in self._idle.values())

    def kept(self) -> int:
        """Slots this process holds idle for its next holders."""
        return sum(len(idle) for idle in self._idle.values())

    # -- kept slots -----------------------------------------------------------------------

    def _new_owner(self) -> str:
        owner = f"{self.process}:{next(self._tokens)}"
        self._live.add(owner)  # renewed from the moment a statement may take it
        return owner

    def _reuse(self, key: str, cap: int) -> tuple[int, str] | None:
        """A slot of the key this process holds idle, if any (below `cap`)."""
        idle = self._idle.get(key)
        while idle:
            number, (owner, _) = idle.popitem()
            if not idle:
                self._forget_idle(key)
            if number < cap:
                self.stats.reused += 1
                return number, owner
            self._spawn(self._give_back([(key, number, owner)]))  # a smaller cap now
        return None

    def _forget_idle(self, key: str) -> None:
        self._idle.pop(key, None)
        self._idle_by_hash.pop(key_hash(key), None)
        if not self._idle:
            self._idle_now.clear()

    def _take_idle(self, key: str | None = None, older: float | None = None) -> list[Any]:
        """Remove idle slots (of `key`, or all; idle since before `older`) to give back."""
        found = []
        for k in [key] if key is not None else list(self._idle):
            idle = self._idle.get(k, {})
            for number, (owner, since) in list(idle.items()):
                if older is None or since <= older:
                    del idle[number]
                    found.append((k, number, owner))
            if not idle:
                self._forget_idle(k)
        return found

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _sweep(self) -> None:
        """Give back slots idle for `linger` (one statement for all of them)."""
        loop = asyncio.get_running_loop()
        while not self._closed:  # a cancel lost on the way (see `aclose`) ends it too
            await self._idle_now.wait()
            await asyncio.sleep(self.linger)
            stale = self._take_idle(older=loop.time() - self.linger)
            if stale:
                await self._give_back(stale)
            now = loop.time()
            if len(self._contended) > 1000:
                self._contended = {h: t for h, t in self._contended.items() if t > now}

    async def _give_back(self, slots: list[tuple[str, int, str]]) -> None:
        for key, _, owner in slots:
            self._live.discard(owner)  # no longer renewed, even if the statement fails
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]
        params = {
            "keys": [key for key, _, _ in slots],
            "numbers": [number for _, number, _ in slots],
            "owners": [owner for _, _, owner in slots],
            "channel": CHANNEL,
        }
        self.stats.gives += 1
        self.stats.given += len(slots)
        try:
            await self._execute(GIVE_BACK, params)
        except Exception:  # their leases run out instead
            log.exception("could not give back %d slot(s) of %s", len(slots), slots[0][0])

    # -- waiting --------------------------------------------------------------------------

    async def _wait(self, key: str, cap: int, notice: Notice | None) -> tuple[int, str]:
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
        owner = ""
        got: tuple[int, str] | None = None
        try:
            await turn
            delay = FIRST_POLL
            while True:
                line.wake.clear()
                got = self._reuse(key, cap)  # handed over by a hold that ended here
                if got is not None:
                    return got
                if self._held[key] < cap:  # else the cap is all here: wait for a hand-over
                    owner = owner or self._new_owner()
                    number = await self._take(key, cap, owner)
                    if number is not None:
                        got = (number, owner)
                        return got
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(line.wake.wait(), delay)
                delay = min(delay * 2, self.poll)
        finally:
            if owner and (got is None or got[1] != owner):
                self._live.discard(owner)
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
                notice.waited(key, loop.time() - started, got is not None)

    def _notified(self, payload: str) -> None:
        if payload.startswith(WANT):
            hashed, _, process = payload[len(WANT) :].partition(":")
            if process == key_hash(self.process):
                return  # this process's own miss
            loop = asyncio.get_running_loop()
            self._contended[hashed] = loop.time() + self.poll * WANTED_POLLS
            key = self._idle_by_hash.get(hashed)
            if key is not None:  # another process waits: what this one keeps goes back
                self._spawn(self._give_back(self._take_idle(key)))
            return
        line = self._lines_by_hash.get(payload)
        if line is not None:
            line.wake.set()

    # -- statements -----------------------------------------------------------------------

    async def _take(self, key: str, cap: int, owner: str, skip: int = 0) -> int | None:
        """One take: a free slot of the key, else a new row — of the missing numbers, the
        `skip`-th (around): takes of the key running together here each skip as many as
        run before them, so their INSERTs do not all pick the lowest."""
        params = {
            "key": key,
            "cap": cap,
            "skip": skip,
            "owner": owner,
            "process": self.process,
            "lease": self.lease,
            "wanted": self.poll * WANTED_POLLS,
            "channel": CHANNEL,
            "want": self._want % key_hash(key),
        }
        self.stats.takes += 1
        task = asyncio.ensure_future(self._execute(TAKE, params, fetch=True))
        try:
            rows = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The statement may still take a slot: give it back once it has.
            with contextlib.suppress(Exception):
                taken = await task
                self._held[key] += sum(1 for (number,) in taken or () if number >= 0)
                back = [(key, number, owner) for (number,) in taken or () if number >= 0]
                if back:
                    await self._give_back(back)
            raise
        except OperationalError:  # the database is away: try again like a miss, a while
            self._failures += 1
            if self._failures > MAX_FAILURES:
                raise
            log.warning("could not take a slot of %s; trying again", key, exc_info=True)
            return None
        self._failures = 0
        numbers = [int(number) for (number,) in rows if number >= 0]
        if not numbers:
            return None
        self.stats.taken += 1
        self._held[key] += 1
        return numbers[0]

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
                asyncio.create_task(self._sweep(), name="klyntos-slots-sweep"),
            ]

    async def _listen(self) -> None:
        import psycopg

        while not self._closed:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                try:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
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
        while not self._closed:
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
            # Cancelled again until it ends: on Python 3.11 a cancel that arrives as the
            # pool hands a connection over is swallowed (`asyncio.wait_for` returns the
            # connection instead), and a heartbeat that lost its cancel renewed for ever.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=STOP_RECHECK_SECONDS)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for chore in list(self._chores):
            with contextlib.suppress(Exception):
                await chore
        kept = self._take_idle()
        if kept and self._pool is not None:
            await self._give_back(kept)  # what this process kept goes back at once
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
    """ValueError naming a KLYNTOS_SLOT_* (or the breakers' sync) setting that cannot work."""
    for name in ("KLYNTOS_SLOT_LEASE_SECONDS", "KLYNTOS_SLOT_POLL_SECONDS"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"{name} must be a positive number of seconds")
    if settings.KLYNTOS_SLOT_POLL_SECONDS > settings.KLYNTOS_SLOT_LEASE_SECONDS:
        raise ValueError("KLYNTOS_SLOT_POLL_SECONDS must not be longer than the lease")
    if not 1 <= settings.KLYNTOS_SLOT_CONNECTIONS <= 100:
        raise ValueError("KLYNTOS_SLOT_CONNECTIONS must be between 1 and 100")
    # The workers' shared breakers (engine/breaker_sharing.py) ride on the same tables.
    if not 0.05 <= settings.KLYNTOS_BREAKER_SYNC_SECONDS <= 60:
        raise ValueError("KLYNTOS_BREAKER_SYNC_SECONDS must be seconds from 0.05 to 60")
