"""Persists engine events as Run / ItemRun / StepRun rows, in batches, then publishes a
coalesced delta to the channel-layer group `run.<id>` once the batch is committed.

The engine calls `RunStore.sink` for every event (cheap: it appends). A flusher task writes
whatever accumulated every `interval` seconds (from the event loop on PostgreSQL, else on
one dedicated thread) — and at once when a loop's body step waits for a permit that a stored
row gives back (`stored_then`, `hurry`), steps ending meanwhile sharing the next write —
so a burst of 1,000 item completions costs a handful of transactions; deltas go out at most
every `interval`, so it costs a handful of websocket messages too. A row that only started
is written once it has run for an interval: most end before, and are written once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from engine import leases
from engine.core.bounded import trim_text, trim_value
from engine.core.counters import COUNTS, STEP_COUNT, block_state, zero
from engine.core.data import json_safe
from engine.core.errors import SizeLimitError
from engine.core.events import Event
from engine.core.executor import is_skipped_output
from engine.core.provider_state import fold_breaker, fold_limit
from engine.core.sizes import SizeMeter
from engine.json_text import json_expression
from engine.loop_connection import LoopConnection, Statement, last_rowcount, one_query
from engine.models import FINAL_STATUSES, ItemRun, Run, StepRun
from engine.polling import drop_broken_connections
from engine.publish import group_send
from engine.row_updates import RowUpdate, select_statement, update_statement
from engine.upsert import TIME_FIELDS, Upsert, from_epoch

log = logging.getLogger(__name__)

# The providers (breakers, adaptive limits) a store's steps met, merged into the run's row on
# PostgreSQL two levels deep: a run's loop items may run in chunks on several workers, each
# store knowing the keys (and of a key, the breaker or the limit) its own steps met, so none
# may set the column whole over another's. The latest writer's wins per key and part.
PROVIDERS_MERGE = """UPDATE engine_run SET providers = coalesce(providers, '{}'::jsonb) || coalesce(
    (SELECT jsonb_object_agg(
        e.key,
        CASE WHEN jsonb_typeof(engine_run.providers -> e.key) = 'object'
            AND jsonb_typeof(e.value) = 'object'
            THEN (engine_run.providers -> e.key) || e.value ELSE e.value END)
     FROM jsonb_each(%s::jsonb) AS e), '{}'::jsonb)
WHERE id = %s"""

ITEM_FIELDS = [
    "status",
    "data",
    "error",
    "failed_block",
    "worker",
    "started_at",
    "finished_at",
    "duration",
    "waited",
    "loop_block",
    "parent_key",
    "index",
]
STEP_FIELDS = [
    "name",
    "status",
    "output",
    "error",
    "attempts",
    "usage",
    "cache",
    "saved_usage",
    "redacted",
    "started_at",
    "finished_at",
    "duration",
    "waited",
]


RUN_ENDS = {"run.finished", "run.failed"}
# How often a run with nothing to write checks whether it was cancelled from elsewhere.
CANCEL_CHECK_SECONDS = 1.0
ITEM_ENDS = {"item.finished": "succeeded", "item.failed": "failed", "item.cancelled": "cancelled"}
STEP_ENDS = {"step.finished": "succeeded", "step.failed": "failed", "step.cancelled": "cancelled"}
FINAL_ROW = {"succeeded", "failed", "cancelled", "not_started"}
# Wire bounds (docs/run-protocol.md): items per frame, item data bytes, text characters.
WIRE_ITEMS = 50
ITEM_DATA_BYTES = 512
TEXT_CHARS = 500
# Rows written per statement when thousands of never-started items are recorded at once.
ROWS_PER_STATEMENT = 2000
# One statement per batch and table (engine/upsert.py); a row lacking a field takes the
# model's default (an item's index: 0).
ITEM_ROWS = Upsert(ItemRun, unique=["run", "key"], update=ITEM_FIELDS, defaults={"index": 0})
STEP_ROWS = Upsert(StepRun, unique=["run", "item_key", "block_id"], update=STEP_FIELDS)
# The run's end goes from the event loop when its outputs are at most this big as JSON (the
# thread encodes bigger ones in slices, engine/json_text.py).
LOOP_END_BYTES = 256 * 1024
# What ending a run sets on the rows that never reported their end.
STRAY_ITEM = {"status": "cancelled", "error": "cancelled while running: the run ended"}
STRAY_STEP = {"status": "cancelled"}
# Least seconds between two progress notices of one run on its workflow's group.
WORKFLOW_PROGRESS_INTERVAL = 1.0


def group_name(run_id: Any) -> str:
    return f"run.{run_id}"


def workflow_group_name(workflow_id: Any) -> str:
    return f"workflow.{workflow_id}"


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RunStore:
    """Folds a run's events into rows and writes them in batches.

    The run's final status is held back until `close()`, which writes it together with the
    run's outputs in one transaction, so nobody ever sees a finished run without outputs.
    A batch that cannot be stored is stored with its JSON values as text; one that still
    cannot is logged and skipped: the run still ends properly.
    """

    def __init__(
        self,
        run_id: Any,
        *,
        interval: float = 0.1,
        publish: bool = True,
        on_cancelled: Callable[[], object] | None = None,
        workflow_id: Any = None,
        lease_owner: str | None = None,
        start_seq: int = 0,
        thread: ThreadPoolExecutor | None = None,
        on_loop: LoopConnection | None = None,
        loop_of: Mapping[str, str] | None = None,
    ) -> None:
        self.run_id = run_id
        # Each body block's enclosing loop (`loops_of_graph`): the wire paints a body block
        # running while its loop runs.
        self.loop_of: Mapping[str, str] = loop_of or {}
        # The execution's lease (engine/leases.py): writes renew it (`_run_values`), and a
        # run whose lease went to another process is that process's to write from then on.
        self.lease_owner = lease_owner
        self._lease_renewed = float("-inf")  # monotonic: when a statement last renewed it
        # host:pid of the executing process, recorded on the items it runs.
        self.worker = lease_owner.rsplit(":", 1)[0] if lease_owner else ""
        self.workflow_id = workflow_id
        self._workflow_noticed = float("-inf")
        self.interval = interval
        self.publish = publish
        self.on_cancelled = on_cancelled
        self._pending: list[Event] = []
        self._items: dict[str, dict[str, Any]] = {}
        self._steps: dict[tuple[str, str], dict[str, Any]] = {}
        # Rows that only started, held back from the database (`_fresh_rows`): most end
        # within an interval and are then written once, ended, instead of twice. Each with
        # when its start was folded here (not the row's `started_at`: an item done before
        # keeps its first start, maybe from another host's clock).
        self._fresh_items: dict[str, tuple[float, dict[str, Any]]] = {}
        self._fresh_steps: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        # The next write takes every fresh row, however young (`durable`).
        self._everything = False
        self._run: dict[str, Any] = {"last_seq": start_seq}
        self._ending: dict[str, Any] = {}
        # Latest counts of each loop instance: (loop id, enclosing item key) -> counts.
        self._progress: dict[tuple[str, str], dict[str, int]] = {}
        # Step counters per block id, folded from row status changes.
        self._step_counts: dict[str, dict[str, int]] = {}
        self._loop_limits: dict[str, dict[str, int]] = {}
        # The thread every write goes through, keeping its connection. A store handed one
        # (a chunk's, engine/chunk_runs.py) leaves it and its connection open at its end,
        # for the owner's next store; its own is closed with it.
        self._owns_thread = thread is None
        self._thread = thread or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"run-store-{str(run_id)[:8]}"
        )
        # Batches go from the event loop itself on PostgreSQL (engine/loop_connection.py):
        # a connection of the store's own, or one it is handed (a chunk's, kept between the
        # run's chunks like its thread); the thread writes the end.
        self._on_loop: LoopConnection | None = on_loop
        self._owns_on_loop = on_loop is None
        self._live_update: RowUpdate | None = None  # `_live()`'s, for `_run_update_sql`
        # `providers` as last merged into the run's row (PROVIDERS_MERGE).
        self._providers_written: dict[str, Any] = {}
        self._started_monotonic = 0.0  # when this execution began writing (`ended_line`)
        # Wakes the flusher before its interval: a future it sleeps on, or a flag when it
        # is busy (an Event waited with a timeout took three turns of the loop to wake it,
        # each behind every ready item: turns a step waiting for its permit waits too).
        self._woken = False
        self._sleeping: asyncio.Future[None] | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        # Events sunk, and how many of them a finished write covered: `stored_then()` calls
        # back once the second reaches the first (its callbacks: the count each waits for).
        self._sunk = 0
        self._covered = 0
        self._when_stored: list[tuple[int, Callable[[], None]]] = []
        # Writes come as often as items wait for them; deltas go out at most every
        # `interval`, those written meanwhile merged into the next one.
        self._unsent: dict[str, Any] | None = None
        self._published_at = float("-inf")

    # --- engine side ---------------------------------------------------------------------

    def sink(self, event: Event) -> None:
        # The run's last event does not wake the flusher: `close()` follows it and writes it
        # with the end in one hop (a batch of its own first made the end wait for two).
        self._pending.append(event)
        self._sunk += 1

    def stored_then(self, callback: Callable[[], None]) -> None:
        """Calls `callback` once every event sunk so far is written (or its write failed and
        was logged); at once when there is nothing to wait for: no flusher to write it (not
        started, or stopped: close() writes it). A loop's body step keeps its permit until
        then (engine/core/step_permits.py): the crash bound."""
        target = self._sunk
        if self._covered >= target or self._closed or not self._flushing():
            callback()
            return
        self._when_stored.append((target, callback))

    def hurry(self) -> None:
        """Someone waits on a `stored_then`: write now rather than at the next interval (the
        items finishing meanwhile share that write: a group commit)."""
        if self._when_stored:
            self._wake()

    async def durable(self) -> None:
        """Returns once every event sunk so far is written, the start of a row that has not
        ended yet too; the write starts at once."""
        fresh = self._has_fresh()
        if self._pending or fresh:
            self._everything = True
        if fresh:
            # Those rows wait too, and a write in flight may have left them out: one more.
            self._sunk += 1
        done = asyncio.get_running_loop().create_future()
        self.stored_then(lambda: _settle(done))
        if done.done():
            self._everything = False  # nothing to write: later fresh rows wait as usual
            return
        self.hurry()
        await done

    def _wake(self) -> None:
        self._woken = True
        if self._sleeping is not None and not self._sleeping.done():
            self._sleeping.set_result(None)

    async def _sleep(self) -> None:
        """Until woken or `interval` has passed; at once when woken meanwhile."""
        if not self._woken:
            loop = asyncio.get_running_loop()
            self._sleeping = loop.create_future()
            timer = loop.call_later(self.interval, _settle, self._sleeping)
            try:
                await self._sleeping
            finally:
                timer.cancel()
                self._sleeping = None
        self._woken = False

    def _flushing(self) -> bool:
        return self._task is not None and not self._task.done()

    def _covered_up_to(self, count: int) -> None:
        """A write ended covering the first `count` events sunk: wake who waited for them
        (everyone once nothing will write any more: closed, or the flusher stopped)."""
        self._covered = max(self._covered, count)
        everyone = self._closed or not self._flushing()
        waiting: list[tuple[int, Callable[[], None]]] = []
        due: list[Callable[[], None]] = []
        for target, callback in self._when_stored:
            if everyone or target <= self._covered:
                due.append(callback)
            else:
                waiting.append((target, callback))
        self._when_stored = waiting
        for callback in due:
            callback()

    def ended_line(self, final: dict[str, Any]) -> str:
        """One log line for the run's end: its status, counts and time (what an operator
        looks for first)."""
        status = {**self._ending, **final}.get("status", "ended")
        totals = self._progress_totals()
        counts = ", ".join(f"{totals[name]} {name}" for name in COUNTS[:4] if totals[name])
        took = time.monotonic() - self._started_monotonic if self._started_monotonic else 0.0
        items = f"{totals['total']} items" + (f" ({counts})" if counts else "")
        return f"run {self.run_id} {status}: {items} in {took:.1f} s"

    def start(self) -> None:
        self._started_monotonic = time.monotonic()
        alias = router.db_for_write(Run)
        if self._on_loop is None and connections[alias].vendor == "postgresql":
            self._on_loop = LoopConnection(alias)
        self._task = asyncio.create_task(self._flush_forever())

    async def _stop_writing_on_loop(self) -> None:
        """Once the flusher has stopped: what is left goes through the thread, and a run
        holds one connection at a time."""
        on_loop, self._on_loop = self._on_loop, None
        if on_loop is not None and self._owns_on_loop:
            await on_loop.close()

    async def close(self, final: dict[str, Any] | None = None) -> None:
        """Flush what is left, then store the run's end (held status + `final` values)."""
        self._closed = True
        self._wake()
        loop = asyncio.get_running_loop()
        if self._task is not None:
            await self._task  # a batch being written finishes; the flusher writes no more
        batch, self._pending = self._pending, []
        self._covered_up_to(self._sunk)  # nothing runs any more that could wait for it
        delta = self._apply(batch, everything=True) if batch or self._has_fresh() else None
        values = {**self._ending, **(final or {})}
        values.setdefault("finished_at", timezone.now())
        # The end is a change of its own: it gets the next seq, so listeners never drop it.
        values["last_seq"] = self._run.get("last_seq", 0) + 1
        try:
            try:
                try:
                    ended = await self._end_on_loop(delta, values)
                finally:  # closed: a transaction it left open is rolled back
                    await self._stop_writing_on_loop()
                if ended is None:
                    ended = await loop.run_in_executor(
                        self._thread, self._write_last, delta, values
                    )
            finally:
                if delta is not None:
                    self._forget_ended(delta)
            live, counters = ended
            if not live:
                self._cancelled_elsewhere()
            delta = self._take_unsent(delta)
            if self.publish and delta is not None:
                await self._send(delta)
            if self.publish and counters:
                self._run.update(values, **counters)
                ending = {
                    "run": {k: v for k, v in self._run.items() if k != "outputs"},
                    "items": [],
                    "steps": [],
                    "blocks": set(counters["blocks"]),
                }
                await self._send(ending)
        finally:
            await self._end_thread(loop)

    async def _end_on_loop(
        self, delta: dict[str, Any] | None, values: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]] | None:
        """`_write_last` from the event loop, where the batches went: the last rows, the end,
        the stray rows cancelled and the counters recounted, in one transaction of two round
        trips. On the store thread the end paid for opening the thread's own connection
        (~25 ms) and Django's statements one round trip each (~20 ms): most of a run's last
        item → final status. None, with nothing stored, when the thread must write it: no
        loop connection, outputs too big to encode on the loop, the run no longer this
        execution's to end (the thread's statements sort that out), or a failed write."""
        on_loop = self._on_loop
        if on_loop is None:
            return None
        try:
            SizeMeter(LOOP_END_BYTES).check(values.get("outputs"))
        except SizeLimitError:
            return None  # encoded on the thread, in slices (engine/json_text.py)
        connection = connections[on_loop.alias]  # compiles; never connects
        try:
            batch = self._statements(connection, delta) if delta is not None else []
            end = [
                update_statement(self._live(), self._end_values(values)),
                update_statement(self._stray_items(), STRAY_ITEM),
                update_statement(self._stray_steps(), STRAY_STEP),
                select_statement(self._step_tally()),
                select_statement(self._item_tally()),
            ]
            first = await on_loop.results([("BEGIN", []), *batch, *end])
            (ended, _), _, _, (_, steps), (_, items) = first[-len(end) :]
            if not ended:
                await on_loop.results([("ROLLBACK", [])])
                return None
            counters = self._counters(steps, items)
            await on_loop.results(
                [update_statement(Run.objects.filter(pk=self.run_id), counters), ("COMMIT", [])]
            )
        except Exception:
            log.warning("the end of run %s goes from the store thread", self.run_id, exc_info=True)
            await on_loop.close()  # whatever it had begun is rolled back, not left open
            return None
        return True, counters

    async def flush(self) -> None:
        """Store every event so far, and wait until every batch handed over is written."""
        if self._flushing():
            # The flusher writes it all now, rows that only started too, and `durable` also
            # waits for a batch it has in flight (a write of our own would find nothing
            # left in that case, and return before that batch is stored).
            await self.durable()
        else:
            self._everything = True  # the rows that only started too
            await self._flush()
        # The store thread writes batches in order: a no-op behind them ends after them.
        await asyncio.get_running_loop().run_in_executor(self._thread, lambda: None)

    async def suspend(self) -> None:
        """Store what is left and give the run back unfinished (a graceful stop): no end is
        written; the next process that looks resumes the run from these rows."""
        self._closed = True
        self._wake()
        if self._task is not None:
            await self._task
        batch, self._pending = self._pending, []
        self._covered_up_to(self._sunk)
        delta = self._apply(batch, everything=True) if batch or self._has_fresh() else None
        loop = asyncio.get_running_loop()
        try:
            if not await self._suspend_on_loop(delta):
                await self._stop_writing_on_loop()  # a run holds one connection at a time
                # The last rows and the release in one hop to the store thread.
                await loop.run_in_executor(self._thread, self._write_and_release, delta)
            delta = self._take_unsent(delta)
            if self.publish and delta is not None:
                await self._send(delta)
        finally:
            await self._stop_writing_on_loop()
            await self._end_thread(loop)

    async def _suspend_on_loop(self, delta: dict[str, Any] | None) -> bool:
        """The last rows and the release in one transaction from the event loop, where the
        batches went: a worker suspends a chunk's store at each chunk's end, and the hop to
        the thread and its Django statements were a chunk's end (their GIL taken from the
        items running meanwhile). False, with nothing stored, when there is no loop
        connection or the write failed: the thread stores it all then."""
        on_loop = self._on_loop
        if on_loop is None:
            return False
        connection = connections[on_loop.alias]  # compiles; never connects
        try:
            statements = self._statements(connection, delta) if delta is not None else []
            release = self._release_update()
            if release is not None:
                rows, values = release
                statements.append(rows.statement(values))
            if statements:
                await on_loop.transaction(statements)
        except Exception:
            log.warning(
                "the last rows of run %s go from the store thread", self.run_id, exc_info=True
            )
            return False
        return True

    async def _end_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._owns_thread:
            await loop.run_in_executor(self._thread, connections.close_all)
            self._thread.shutdown(wait=True)

    def _write_and_release(self, delta: dict[str, Any] | None) -> None:
        if delta is not None:
            try:
                self._write(delta)
            except Exception:
                log.exception("could not store the last events of run %s", self.run_id)
        self._release()

    def _release(self) -> None:
        drop_broken_connections()
        release = self._release_update()
        if release is not None:
            rows, values = release
            rows.update(values)

    def _release_update(self) -> tuple[RowUpdate, dict[str, Any]] | None:
        """What giving the run back unfinished updates (None: it holds no lease)."""
        return leases.release_update(self.run_id, self.lease_owner) if self.lease_owner else None

    async def _flush_forever(self) -> None:
        try:
            await self._flush_until_closed()
        except Exception:  # the run goes on; close() still writes what is left with its end
            log.exception("the store of run %s stopped writing batches", self.run_id)
        finally:
            # No callback may outlive the flusher: a step would keep its permit forever.
            callbacks, self._when_stored = self._when_stored, []
            for _, callback in callbacks:
                callback()

    async def _flush_until_closed(self) -> None:
        quiet = 0.0
        while not self._closed:
            await self._sleep()
            if self._closed:
                return  # close() writes what is left with the run's end
            if self._pending or self._fresh_due():
                quiet = 0.0
                await self._flush()
            elif self._unsent is not None:
                await self._publish(None)
            else:
                quiet += self.interval
                if quiet >= CANCEL_CHECK_SECONDS:  # nothing to write: still look for a cancel
                    quiet = 0.0
                    await self._check_live()

    async def _check_live(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._on_loop is not None and self.lease_owner:  # the heartbeat, from here
                live = await self._on_loop.transaction([self._run_update_sql({})]) > 0
            else:
                live = await loop.run_in_executor(self._thread, self._is_live)
        except Exception:
            log.warning("could not check run %s for a cancel", self.run_id, exc_info=True)
            return
        if not live:
            self._cancelled_elsewhere()

    def _cancelled_elsewhere(self) -> None:
        """The row was ended by someone else (a cancel from another process): stop, once."""
        callback, self.on_cancelled = self.on_cancelled, None
        if callback is not None:
            callback()

    def _is_live(self) -> bool:
        drop_broken_connections()
        if self.lease_owner:  # the quiet path's heartbeat
            return bool(self._live().update(lease_expires=leases.expiry()))
        return self._live().exists()

    def _live(self) -> QuerySet[Any]:
        """The run row while this execution may still write it."""
        if self.lease_owner:
            return leases.held(self.run_id, self.lease_owner)
        return _live(self.run_id)

    def _has_fresh(self) -> bool:
        return bool(self._fresh_items or self._fresh_steps)

    def _fresh_due(self) -> bool:
        """A fresh row waited an interval, or `durable` wants them all."""
        if self._everything:
            return self._has_fresh()
        due = time.time() - self.interval  # the oldest of each come first
        return any(
            next(iter(fresh.values()))[0] <= due
            for fresh in (self._fresh_items, self._fresh_steps)
            if fresh
        )

    async def _flush(self) -> None:
        if not self._pending and not self._fresh_due():
            self._everything = False  # nothing fresh to write now: later ones wait as usual
            return
        batch, self._pending = self._pending, []
        covers = self._sunk
        everything, self._everything = self._everything, False
        delta = self._apply(batch, everything=everything)
        loop = asyncio.get_running_loop()
        try:
            if self._on_loop is not None:
                live = await self._write_on_loop(self._on_loop, delta)
            else:
                live = await loop.run_in_executor(self._thread, self._write, delta)
        except Exception:  # never let storage kill the run or leave it unfinished
            # A batch of rows that only started has no events of its own.
            seqs = f"{batch[0].seq}..{batch[-1].seq}" if batch else "(rows that started)"
            log.exception("could not store events %s of run %s", seqs, self.run_id)
            return
        finally:
            self._forget_ended(delta)
            self._covered_up_to(covers)
        if not live:
            self._cancelled_elsewhere()
        if self.publish:
            # Rows that only started went on the wire with their start: a batch of nothing
            # else has nothing new to show (and its seq is the last one sent).
            await self._publish(delta if batch else None)

    async def _publish(self, delta: dict[str, Any] | None) -> None:
        """Sends what was written since the last delta, when `interval` has passed since."""
        if delta is not None:
            self._unsent = delta if self._unsent is None else merged(self._unsent, delta)
        now = asyncio.get_running_loop().time()
        if self._unsent is None or now - self._published_at < self.interval:
            return
        unsent, self._unsent = self._unsent, None
        self._published_at = now
        await self._send(unsent)
        if now - self._workflow_noticed >= WORKFLOW_PROGRESS_INTERVAL:
            self._workflow_noticed = now
            await publish_workflow_event(self.workflow_id, "run.progress", self.run_id)

    def _take_unsent(self, delta: dict[str, Any] | None) -> dict[str, Any] | None:
        """The deltas not sent yet and `delta`, as one (for the last message of a run)."""
        unsent, self._unsent = self._unsent, None
        if unsent is None or delta is None:
            return unsent or delta
        return merged(unsent, delta)

    # --- folding events into row state ---------------------------------------------------

    def _apply(self, batch: list[Event], *, everything: bool = False) -> dict[str, Any]:
        """A batch of events folded into the rows they change. A row that only started goes
        in the delta (the wire shows it) but is held back from the database while it is
        younger than `interval` (`everything`: never): it is written with its end if that
        comes first, as most do, else by a later batch."""
        items: dict[str, dict[str, Any]] = {}
        steps: dict[tuple[str, str], dict[str, Any]] = {}
        not_started: list[dict[str, Any]] = []
        blocks: set[str] = set()
        for event in batch:
            data = event.data
            kind = event.type
            # Most events first: a step's and an item's start and end.
            if kind.startswith("step."):
                key = (data.get("item") or "", data["block"])
                row = self._steps.get(key)
                if row is None:
                    row = self._steps[key] = {
                        "item_key": key[0],
                        "block_id": key[1],
                        "name": data["name"],
                    }
                before = row.get("status")
                if kind == "step.started":
                    row.update(status="running", started_at=event.at)
                elif kind == "step.retrying":
                    row.update(
                        status="retrying", attempts=data["attempt"], error=data.get("error") or ""
                    )
                elif kind == "step.waiting":  # for its provider (engine/core/providers.py)
                    row.update(status="waiting", error=data.get("message") or "")
                elif kind == "step.waited":
                    row.update(status="running", error="")
                    self._add_waited(row, float(data.get("seconds") or 0.0))
                else:
                    row.update(
                        status=STEP_ENDS.get(kind, "failed"),
                        output=data.get("output"),
                        error=data.get("error") or "",
                        attempts=data.get("attempts") or 1,
                        usage=data.get("usage") or [],
                        # The result cache: "hit" (no call; what it saved) or "miss".
                        cache=data.get("cache") or "",
                        saved_usage=data.get("saved_usage") or [],
                        redacted=bool(data.get("redacted")),
                        finished_at=event.at,
                        duration=data.get("duration"),
                    )
                self._count_step(key[1], before, row["status"])
                blocks.add(key[1])
                if before is None and kind == "step.started":
                    self._fresh_steps[key] = (event.at, row)
                elif self._fresh_steps:
                    self._fresh_steps.pop(key, None)
                steps[key] = row
            elif kind.startswith("item."):
                row = self._items.get(data["item"])
                new_row = row is None
                if row is None:
                    row = self._items[data["item"]] = {"key": data["item"]}
                if kind == "item.started":
                    row.update(
                        status="running",
                        loop_block=data["loop"],
                        parent_key=data.get("parent") or "",
                        index=data["index"],
                        data=data.get("data"),
                        # An item done before keeps its own start (memo.DoneItem).
                        started_at=data.get("started_at") or event.at,
                        worker=data.get("worker", self.worker),
                    )
                else:
                    if (
                        "started_at" not in row
                    ):  # never started here (a failure an earlier execution recorded)
                        row.update(
                            loop_block=data.get("loop", ""),
                            parent_key=data.get("parent") or "",
                            index=data.get("index", 0),
                            data=data.get("data"),
                        )
                    row.update(
                        status=ITEM_ENDS.get(kind, "failed"),
                        error=data.get("error") or "",
                        failed_block=data.get("block") or "",
                        finished_at=data.get("finished_at") or event.at,
                        duration=data.get("duration"),
                    )
                if new_row and kind == "item.started":
                    self._fresh_items[row["key"]] = (event.at, row)
                elif self._fresh_items:
                    self._fresh_items.pop(row["key"], None)
                items[row["key"]] = row
            elif kind == "run.started":
                self._run["status"] = "running"
                if not data.get("resumed"):  # a resumed run keeps when it first started
                    self._run["started_at"] = from_epoch(event.at)
            elif kind in RUN_ENDS:
                self._ending = {
                    "status": data["status"],
                    "error": data.get("error") or "",
                    "finished_at": from_epoch(event.at),
                }
            elif kind == "progress":
                self._progress[(data["loop"], data.get("item") or "")] = {
                    k: data.get(k, 0) for k in ("total", *COUNTS)
                }
                limits = self._loop_limits.setdefault(
                    data["loop"], {"max_concurrent": 0, "limit": 0, "peak_running": 0}
                )
                if data.get("cap"):
                    limits["max_concurrent"] = data["cap"]
                    limits["limit"] = limits["limit"] or data["cap"]
                peak = data.get("peak_running", data.get("running", 0))
                limits["peak_running"] = max(limits["peak_running"], peak)
                blocks.add(data["loop"])
            elif kind == "loop.concurrency":
                limits = self._loop_limits.setdefault(
                    data["loop"], {"max_concurrent": 0, "limit": 0, "peak_running": 0}
                )
                limits["limit"] = data["limit"]
                blocks.add(data["loop"])
            elif kind == "loop.state":  # a top-level loop's decisions, for its resume
                limits = self._loop_limits.setdefault(
                    data["loop"], {"max_concurrent": 0, "limit": 0, "peak_running": 0}
                )
                limits["state"] = data["state"]
            elif kind == "loop.batch":  # waves (`batch_size`): which batch is running
                limits = self._loop_limits.setdefault(
                    data["loop"], {"max_concurrent": 0, "limit": 0, "peak_running": 0}
                )
                limits["batch"], limits["batches"] = data["batch"], data["batches"]
                blocks.add(data["loop"])
            elif kind == "provider.limit":  # a provider's adaptive limit, as this run met it
                self._run["providers"] = fold_limit(self._run.get("providers", {}), data, event.at)
            elif kind == "provider.breaker":  # a provider's breaker opened, probes or closed
                self._run["providers"] = fold_breaker(
                    self._run.get("providers", {}), data, event.at
                )
            elif kind == "items.not_started":
                at = event.at
                prefix = data["prefix"]
                for index, item_data in zip(data["indexes"], data["data"], strict=True):
                    not_started.append(
                        {
                            "key": f"{prefix}[{index}]",
                            "status": "not_started",
                            "loop_block": data["loop"],
                            "parent_key": data.get("parent") or "",
                            "index": index,
                            "data": item_data,
                            "error": data.get("error") or "",
                            "finished_at": at,
                        }
                    )
        held: tuple[set[str], set[tuple[str, str]]] | None = None
        if self._has_fresh():
            items, steps, held = self._fresh_rows(items, steps, everything=everything)
        self._run.update(self._progress_totals())
        self._run["blocks"] = self._block_counters()
        self._run["loops"] = self._loop_states()
        if batch:
            self._run["last_seq"] = batch[-1].seq
        return {
            "run": dict(self._run),
            "items": list(items.values()),
            "steps": list(steps.values()),
            "not_started": not_started,
            "blocks": blocks,
            # Rows in the lists above that only started and are not written yet: they go on
            # the wire now, to the database once they have run for an interval.
            "held": held,
        }

    def _fresh_rows(
        self,
        items: dict[str, dict[str, Any]],
        steps: dict[tuple[str, str], dict[str, Any]],
        *,
        everything: bool,
    ) -> tuple[
        dict[str, dict[str, Any]],
        dict[tuple[str, str], dict[str, Any]],
        tuple[set[str], set[tuple[str, str]]] | None,
    ]:
        """`items` and `steps` with the fresh rows that are due now written too (in front:
        they changed first), and the keys of those still held: the rest, or none with
        `everything`. Due: started an interval ago."""
        due = float("inf") if everything else time.time() - self.interval
        aged_items = _aged(self._fresh_items, due)
        aged_steps = _aged(self._fresh_steps, due)
        if aged_items:
            items = {**aged_items, **items}
        if aged_steps:
            steps = {**aged_steps, **steps}
        if not self._has_fresh():
            return items, steps, None
        return items, steps, (set(self._fresh_items), set(self._fresh_steps))

    def _count_step(self, block_id: str, before: str | None, after: str) -> None:
        counts = self._step_counts.get(block_id)
        if counts is None:
            counts = self._step_counts[block_id] = zero()
        if before is not None and before in STEP_COUNT:
            counts[STEP_COUNT[before]] -= 1
        counts[STEP_COUNT[after]] += 1

    def _loop_counts(self) -> dict[str, dict[str, int]]:
        """Each loop's item counts, summed over its instances (nested loops)."""
        summed: dict[str, dict[str, int]] = {}
        for (loop_id, _), counts in self._progress.items():
            into = summed.setdefault(loop_id, dict.fromkeys(("total", *COUNTS), 0))
            for k, v in counts.items():
                into[k] += v
        return summed

    def _progress_totals(self) -> dict[str, int]:
        """The run's progress: its top-level loops (those not inside an item)."""
        totals = dict.fromkeys(("total", *COUNTS), 0)
        for (_, parent), counts in self._progress.items():
            if not parent:
                for k, v in counts.items():
                    totals[k] += v
        return totals

    def _block_counters(self) -> dict[str, dict[str, int]]:
        """`Run.blocks`: step counts per block, item counts for loops (their own step's
        status kept as `step_running`/`step_failed` to decide theirs)."""
        counters = {block_id: dict(c) for block_id, c in self._step_counts.items()}
        for loop_id, counts in self._loop_counts().items():
            step = self._step_counts.get(loop_id, zero())
            counters[loop_id] = {
                **{k: counts[k] for k in COUNTS},
                "total": counts["total"],
                "step_running": step["running"],
                "step_failed": step["failed"],
            }
        return counters

    def _loop_states(self) -> dict[str, dict[str, int]]:
        states = {}
        for loop_id, counts in self._loop_counts().items():
            limits = self._loop_limits.get(loop_id, {})
            states[loop_id] = {
                **counts,
                "max_concurrent": limits.get("max_concurrent", 0),
                "limit": limits.get("limit", 0),
                "peak_running": limits.get("peak_running", 0),
                # Waves only: the batch under way and how many (an inner loop: its latest);
                # a top-level loop's LoopState, read back when the run resumes.
                **{k: limits[k] for k in ("batch", "batches", "state") if k in limits},
            }
        return states

    def _add_waited(self, step: dict[str, Any], seconds: float) -> None:
        """A step waited `seconds` for a provider: its row and its item's (and that item's
        enclosing items', whose durations include it) record it, written with their next
        change (at the latest their end). Not work: the sequential time leaves it out."""
        step["waited"] = step.get("waited", 0.0) + seconds
        key = step["item_key"]
        while key and (item := self._items.get(key)) is not None:
            item["waited"] = item.get("waited", 0.0) + seconds
            key = item.get("parent_key") or ""

    def _forget_ended(self, delta: dict[str, Any]) -> None:
        """Rows that reached their end are stored: the store stops holding them, so its
        memory follows the items in flight, not the items done."""
        for row in delta["items"]:
            if row.get("status") in FINAL_ROW:
                self._items.pop(row["key"], None)
        for row in delta["steps"]:
            if row.get("status") in FINAL_ROW:
                self._steps.pop((row["item_key"], row["block_id"]), None)

    # --- database (the event loop's connection, the store thread) --------------------------

    async def _write_on_loop(self, on_loop: LoopConnection, delta: dict[str, Any]) -> bool:
        """`_write` from the event loop (PostgreSQL): one transaction, one round trip."""
        connection = connections[on_loop.alias]  # quotes, types and compiles; never connects
        try:
            return await on_loop.transaction(self._statements(connection, delta)) > 0
        except Exception:
            log.warning("storing run %s's batch with its values as text", self.run_id)
            storable = _storable(delta)
            return await on_loop.transaction(self._statements(connection, storable)) > 0

    def _write(self, delta: dict[str, Any]) -> bool:
        """Store one batch; False when the run row was already ended by someone else."""
        drop_broken_connections()
        try:
            return self._write_rows(delta)
        except Exception:
            drop_broken_connections()  # the kept connection died: the retry gets a new one
            # A value the JSON columns cannot take: PostgreSQL's jsonb refuses NUL characters
            # and NaN, lone surrogates cannot be encoded, and a type nobody made JSON-safe
            # cannot be serialised at all. Store the batch with those values as text rather
            # than lose it.
            log.warning("storing run %s's batch with its values as text", self.run_id)
            return self._write_rows(_storable(delta))

    def _write_rows(self, delta: dict[str, Any]) -> bool:
        connection = connections[router.db_for_write(Run)]
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            return self._write_rows_in_one_query(connection, delta)
        with transaction.atomic():
            self._upsert_rows(delta)
            return self._write_run(delta["run"])

    def _upsert_rows(self, delta: dict[str, Any]) -> None:
        """A batch's item and step rows (in the caller's transaction)."""
        items, steps = _written_rows(delta)
        if items:
            ITEM_ROWS.upsert(self.run_id, items)
        rows = delta.get("not_started") or []
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            ITEM_ROWS.upsert(self.run_id, rows[start : start + ROWS_PER_STATEMENT])
        if steps:
            STEP_ROWS.upsert(self.run_id, steps)

    def _statements(self, connection: Any, delta: dict[str, Any]) -> list[Statement]:
        """A batch on PostgreSQL: the item and step upserts, then the run row's update (last:
        its row count says whether the run is still ours)."""
        statements: list[Statement] = []
        items, steps = _written_rows(delta)
        if items:
            statements.append(ITEM_ROWS.postgresql_statement(connection, self.run_id, items))
        rows = delta.get("not_started") or []
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            statements.append(ITEM_ROWS.postgresql_statement(connection, self.run_id, chunk))
        if steps:
            statements.append(STEP_ROWS.postgresql_statement(connection, self.run_id, steps))
        run = delta["run"]
        if "providers" in run:
            merge = self._providers_merge(run["providers"])
            if merge is not None:
                statements.append(merge)
            run = {name: value for name, value in run.items() if name != "providers"}
        statements.append(self._run_update_sql(run))
        return statements

    def _providers_merge(self, providers: dict[str, Any]) -> Statement | None:
        """PROVIDERS_MERGE of the keys (and parts of a key) that changed since the last one,
        None when nothing did."""
        changed: dict[str, Any] = {}
        for key, state in providers.items():
            before = self._providers_written.get(key)
            if before == state:
                continue
            if isinstance(state, dict) and isinstance(before, dict):
                changed[key] = {k: v for k, v in state.items() if before.get(k) != v}
            else:
                changed[key] = state
        if not changed:
            return None
        self._providers_written = {key: dict(state) for key, state in providers.items()}
        return (PROVIDERS_MERGE, [json.dumps(changed), self.run_id])

    def _write_rows_in_one_query(self, connection: Any, delta: dict[str, Any]) -> bool:
        """`_write_rows` in one round trip, as the loop sends it (`one_query`): every wait of
        this thread ends by taking the GIL back from a busy event loop. Through Django's
        cursor, so a failure marks the connection for `drop_broken_connections`; the server
        rolled the whole query back."""
        with connection.cursor() as cursor:
            cursor.execute(*one_query(self._statements(connection, delta)))
            return last_rowcount(cursor) > 0

    def _run_values(self, run: dict[str, Any]) -> dict[str, Any]:
        """What a batch sets on the row `_live()` selects (a chunk's store sets its own): the
        run's counters, and its lease once `leases.renew_seconds()` have passed since the
        last renewal (a heartbeat, `run` empty, always renews).

        Not with every batch: `lease_expires` is indexed (`run_lease`), so an update that
        changes it cannot be HOT and puts a new entry in each of the run table's seven
        indexes. Renewed by every batch (a hundred a second in a fast loop), the one row's
        dead versions filled those indexes; now nearly every batch's update is HOT (1,174 of
        1,306 in four 10,000-item runs, against 2 of 1,351)."""
        if not self.lease_owner:
            return run
        now = time.monotonic()
        if run and now - self._lease_renewed < leases.renew_seconds():
            return run
        self._lease_renewed = now
        return {**run, "lease_expires": leases.expiry()}

    def _run_update_sql(self, run: dict[str, Any]) -> Statement:
        """`self._live().update(...)`'s statement, to send without waiting for its count."""
        if self._live_update is None:  # the same rows every time: built and compiled once
            self._live_update = self._live_rows()
        return self._live_update.statement(self._run_values(run))

    def _live_rows(self) -> RowUpdate:
        """`_live()` as the `RowUpdate` a batch's statement comes from."""
        return RowUpdate(self._live())

    def _write_run(self, run: dict[str, Any]) -> bool:
        """The run row's part of a batch (in its transaction); False when no longer ours."""
        return bool(self._live().update(**self._run_values(run)))

    def _write_last(
        self, delta: dict[str, Any] | None, values: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        """The last batch, then the end; (whether the run was still live, the counters)."""
        live = True
        if delta is not None:
            try:
                live = self._write(delta)
            except Exception:  # never let storage keep the run from ending
                log.exception("could not store the last events of run %s", self.run_id)
        return live, self._write_end(values)

    def _write_end(self, values: dict[str, Any]) -> dict[str, Any]:
        drop_broken_connections()
        try:
            # Tens of MB after a big loop: encoded in slices, not one GIL-holding call.
            encoded = dict(values)
            if "outputs" in encoded:
                encoded["outputs"] = json_expression(encoded["outputs"])
            return self._write_end_rows(encoded)
        except Exception:
            drop_broken_connections()
            log.warning("storing the end of run %s with its outputs as text", self.run_id)
        try:
            return self._write_end_rows(_storable(values))
        except Exception:
            # Even as text the outputs cannot be stored: the run still ends, failed, saying so.
            log.exception("could not store the outputs of run %s", self.run_id)
            ending = {k: v for k, v in values.items() if k != "outputs"}
            ending.update(
                status="failed", error=f"{values.get('error') or ''} {UNSTORABLE}".strip()
            )
            return self._write_end_rows(ending)

    def _end_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """What ending sets on the run row: `values`, and the lease given up."""
        return {**values, "lease_owner": "", "lease_expires": None} if self.lease_owner else values

    def _stray_items(self) -> QuerySet[ItemRun]:
        """Items that never reported their end (cancelled with the run): not running."""
        return ItemRun.objects.filter(run_id=self.run_id, status="running")

    def _stray_steps(self) -> QuerySet[StepRun]:
        return StepRun.objects.filter(run_id=self.run_id, status__in=["running", "retrying"])

    def _step_tally(self) -> QuerySet[Any]:
        """(block id, status, count) of the run's step rows."""
        return (
            StepRun.objects.filter(run_id=self.run_id)
            .values_list("block_id", "status")
            .annotate(n=Count("id"))
            .order_by()
        )

    def _item_tally(self) -> QuerySet[Any]:
        """(loop id, enclosing item key, status, count) of the run's item rows."""
        return (
            ItemRun.objects.filter(run_id=self.run_id)
            .values_list("loop_block", "parent_key", "status")
            .annotate(n=Count("id"))
            .order_by()
        )

    def _write_end_rows(self, values: dict[str, Any]) -> dict[str, Any]:
        with transaction.atomic():
            values = self._end_values(values)
            if not self._live().update(**values):
                if not Run.objects.filter(pk=self.run_id, status__in=FINAL_STATUSES).exists():
                    # Our lease ran out and another process executes the run now: its rows
                    # and its end are that process's to write.
                    log.warning("run %s went on elsewhere; this execution stops", self.run_id)
                    return {}
                # Ended elsewhere (cancelled from another process): keep its status.
                Run.objects.filter(pk=self.run_id).update(
                    running=0, **({"outputs": values["outputs"]} if "outputs" in values else {})
                )
                Run.objects.filter(pk=self.run_id, finished_at__isnull=True).update(
                    finished_at=values["finished_at"]
                )
            self._stray_items().update(**STRAY_ITEM)
            self._stray_steps().update(**STRAY_STEP)
            # The final counters are the rows' own, counted in this transaction.
            counters = self._counters(list(self._step_tally()), list(self._item_tally()))
            Run.objects.filter(pk=self.run_id).update(**counters)
        return counters

    def _counters(
        self, step_rows: Iterable[Sequence[Any]], item_rows: Iterable[Sequence[Any]]
    ) -> dict[str, Any]:
        """Counters from the stored rows (the truth, `_step_tally` and `_item_tally`), for
        the run's end."""
        loops = self._loop_states()
        steps: dict[str, dict[str, int]] = {}
        for block_id, status, n in step_rows:
            steps.setdefault(block_id, zero())[STEP_COUNT.get(status, "failed")] += n
        items: dict[str, dict[str, int]] = {}
        progress = dict.fromkeys(COUNTS, 0)
        for loop_id, parent, status, n in item_rows:
            counted = status if status in COUNTS else "failed"
            items.setdefault(loop_id, zero())[counted] += n
            if not parent:
                progress[counted] += n
        blocks: dict[str, dict[str, int]] = dict(steps)
        for loop_id in {*loops, *items}:
            counts = items.get(loop_id, zero())
            state = loops.setdefault(
                loop_id, {"total": 0, "max_concurrent": 0, "limit": 0, "peak_running": 0}
            )
            total = max(state.get("total", 0), sum(counts.values()))
            state.update(counts, total=total)
            step = steps.get(loop_id, zero())
            blocks[loop_id] = {
                **counts,
                "total": total,
                "step_running": 0,
                "step_failed": step["failed"],
            }
        top_total = sum(c["total"] for (_, parent), c in self._progress.items() if not parent)
        progress["total"] = max(top_total, sum(progress.values()))
        return {**progress, "blocks": blocks, "loops": loops}

    async def _send(self, delta: dict[str, Any]) -> None:
        wired = _wire(delta, self.loop_of)
        await group_send(group_name(self.run_id), {"type": "run.delta", "delta": wired})


def merged(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two deltas of one run as one, as the wire shows it (`_wire`): the later run state, the
    last `WIRE_ITEMS` items (and never-started rows) changed, each once at the place of its
    latest change, and the keys of all of them (the count of the others). A store merges
    every batch of an interval into the one delta it sends: keeping every row made each
    merge go over all the interval's rows again."""

    def latest(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> list[Any]:
        by_key: dict[Any, dict[str, Any]] = {}
        for row in reversed(rows):  # each row's last change, kept where it happened
            by_key.setdefault(key(row), row)
        return list(by_key.values())[::-1]

    return {
        "run": later["run"],
        **_latest_rows(first, later, "items"),
        # Only top-level steps go on the wire (`_wire`): an item's are not kept to merge.
        "steps": latest(
            [r for r in (*first["steps"], *later["steps"]) if not r.get("item_key")],
            lambda r: (r["item_key"], r["block_id"]),
        ),
        **_latest_rows(first, later, "not_started"),
        "blocks": set(first.get("blocks") or ()) | set(later.get("blocks") or ()),
    }


def _latest_rows(first: dict[str, Any], later: dict[str, Any], name: str) -> dict[str, Any]:
    """`name`'s rows of two deltas: the last `WIRE_ITEMS` keys changed, each at its latest
    change, and (`<name>_keys`) the keys of all the rows changed in either."""
    rows = [*(first.get(name) or ()), *(later.get(name) or ())]
    by_key: dict[str, dict[str, Any]] = {}
    for row in reversed(rows):
        if len(by_key) == WIRE_ITEMS:
            break
        by_key.setdefault(row["key"], row)
    keys = _changed_keys(first, name)  # the first delta is the one being merged into: grown
    keys.update(r["key"] for r in later.get(name) or ())
    return {name: list(by_key.values())[::-1], f"{name}_keys": keys}


def _changed_keys(delta: dict[str, Any], name: str) -> set[str]:
    known: set[str] | None = delta.get(f"{name}_keys")
    return known if known is not None else {r["key"] for r in delta.get(name) or ()}


def _written_rows(delta: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A batch's item and step rows but those it holds back (`RunStore._fresh_rows`)."""
    held = delta.get("held")
    if not held:
        return delta["items"], delta["steps"]
    items, steps = held
    return (
        [r for r in delta["items"] if r["key"] not in items],
        [r for r in delta["steps"] if (r["item_key"], r["block_id"]) not in steps],
    )


def _aged(fresh: dict[Any, tuple[float, dict[str, Any]]], due: float) -> dict[Any, dict[str, Any]]:
    """The rows of `fresh` that began by `due`, taken out of it. Rows come in the order
    they began, so the scan stops at the first younger one (one behind it that began
    earlier, by a clock step back, waits a batch more)."""
    aged: dict[Any, dict[str, Any]] = {}
    for key, (began, row) in fresh.items():
        if began > due:
            break
        aged[key] = row
    for key in aged:
        del fresh[key]
    return aged


def _live(run_id: Any) -> QuerySet[Run]:
    return Run.objects.filter(pk=run_id).exclude(status__in=FINAL_STATUSES)


UNSTORABLE = "(the run's outputs could not be stored)"
# Row values that are JSON documents; the rest are model fields (datetimes, numbers, text).
JSON_FIELDS = frozenset({"data", "output", "usage", "outputs"})


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    """A delta (or the run's end values) whose JSON documents any database accepts."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in JSON_FIELDS:
            out[key] = _clean_text(json_safe(value))
        elif isinstance(value, list) and key in {"items", "steps", "not_started"}:
            out[key] = [_storable(r) for r in value]
        elif isinstance(value, dict) and key == "run":
            out[key] = _storable(value)
        else:
            out[key] = _clean_text(value) if isinstance(value, str) else value
    return out


def _clean_text(value: Any) -> Any:
    """NUL becomes U+FFFD (jsonb refuses it), lone surrogates too (UTF-8 cannot hold them)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean_text(k): _clean_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_text(v) for v in value]
    return value


async def publish_run_ended(run_id: Any, workflow_id: Any = None) -> None:
    """Tell the run's websocket listeners (engine/consumers.py) that the run's last row update
    is stored, so that they send the final snapshot and close. A run that ends without a
    `run.finished` event (cancelled, or crashed outside the engine) publishes no final delta.
    The workflow's listeners (an open editor) hear of it too."""
    await group_send(group_name(run_id), {"type": "run.ended"})
    await publish_workflow_event(workflow_id, "run.ended", run_id)


async def publish_workflow_event(workflow_id: Any, event: str, run_id: Any) -> None:
    """`run.started` / `run.progress` / `run.ended` of one run to `workflow.<id>`; the
    workflow socket (builder/workflow_socket.py) reads the run's summary itself."""
    if workflow_id is None:
        return
    message = {"type": "workflow.run", "event": event, "run_id": str(run_id)}
    await group_send(workflow_group_name(workflow_id), message)


async def publish_workflow_changed(workflow_id: Any) -> None:
    """A save or publish of the workflow to `workflow.<id>`: only its id; the workflow socket
    reads the current version numbers itself."""
    message = {"type": "workflow.changed", "workflow_id": str(workflow_id)}
    await group_send(workflow_group_name(workflow_id), message)


def _iso_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its times as ISO text: datetimes (read back from the database) and the
    epoch seconds a store's item and step rows hold (the events' own: the upsert sends them
    as they are, engine/upsert.py)."""
    return {
        k: v.isoformat()
        if isinstance(v, dt.datetime)
        else from_epoch(v).isoformat()
        if k in TIME_FIELDS and isinstance(v, int | float)
        else v
        for k, v in row.items()
    }


def wire_item(row: dict[str, Any]) -> dict[str, Any]:
    """An item row as the socket carries it: data and texts bounded (docs/run-protocol.md)."""
    out = _iso_row(row)
    if "data" in out:
        out["data"] = trim_value(out["data"], ITEM_DATA_BYTES)
    if out.get("error"):
        out["error"] = trim_text(out["error"], TEXT_CHARS)
    return out


def wire_step(row: dict[str, Any]) -> dict[str, Any]:
    """A step row as the socket carries it: no output, but `skipped` when `run_if` skipped
    it (stored as succeeded, which the canvas must not paint as done: "the failure message
    was sent"). A snapshot's rows bring the mark in `skipped` (engine/snapshots.py)."""
    out = {k: v for k, v in _iso_row(row).items() if k not in ("output", "usage", "skipped")}
    if out.get("error"):
        out["error"] = trim_text(out["error"], TEXT_CHARS)
    if row.get("skipped") is True or is_skipped_output(row.get("output")):
        out["skipped"] = True
    return out


def wire_run(run: dict[str, Any]) -> dict[str, Any]:
    """The run's changed fields: flat counters (for older clients) and `progress`."""
    out = {k: v for k, v in _iso_row(run).items() if k not in ("outputs", "blocks", "loops")}
    if out.get("error"):
        out["error"] = trim_text(out["error"], 2000)
    if "total" in out:
        out["progress"] = {k: out.get(k, 0) for k in ("total", *COUNTS)}
    return out


def wire_blocks(
    counters: dict[str, Any],
    ids: Any,
    *,
    ended: bool,
    loop_of: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`BlockState`s of the given block ids from `Run.blocks`-shaped counters. `loop_of`:
    each body block's enclosing loop. A body block that has counted steps is `running` for
    as long as its loop is: between two items none of its steps may run, and a fast step
    (a database write) would otherwise read `succeeded` for most of a run still going."""
    states = {}
    for block_id in ids:
        counts = counters.get(block_id) or {}
        if "step_running" in counts:  # a loop: its items' counts, its own step's state
            state = block_state(
                counts, ended=ended, total=counts.get("total"), running=bool(counts["step_running"])
            )
            if counts.get("step_failed"):
                state["status"] = "failed"
        else:
            loop = (
                (counters.get(loop_of[block_id]) or {}) if loop_of and block_id in loop_of else {}
            )
            going = not ended and bool(loop.get("step_running")) and any(counts.values())
            if ended and loop:
                counts = _with_unreached(counts, loop)
            state = block_state(counts, ended=ended, running=going)
        states[block_id] = state
    return states


def _with_unreached(counts: Mapping[str, Any], loop: Mapping[str, Any]) -> dict[str, Any]:
    """A body block's counts once its run ended, with its loop's items that never reached it
    as not started: it counts its own steps, and an item stopped before it (a budget, a
    cancel) has none there, so the block read `succeeded ✓37` beside 63 items never started.
    At most the loop's cancelled and never started items: a branch an item did not take
    (run_if) is no stop."""
    stopped = int(loop.get("cancelled") or 0) + int(loop.get("not_started") or 0)
    own = sum(int(counts.get(k) or 0) for k in COUNTS)
    unreached = min(stopped, int(loop.get("total") or 0) - own)
    if unreached <= 0:
        return dict(counts)
    return {**counts, "not_started": int(counts.get("not_started") or 0) + unreached}


def body_blocks(loop_of: Mapping[str, str], loops: Iterable[str]) -> set[str]:
    """The body blocks of `loops`: their state follows their loop's (`wire_blocks`)."""
    wanted = set(loops)
    return {block_id for block_id, loop in loop_of.items() if loop in wanted}


def loops_of_graph(blocks: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each body block's enclosing loop (its `parent`: only loops have children), from a
    graph's blocks as stored."""
    return {
        b["id"]: b["parent"]
        for b in blocks
        if isinstance(b.get("id"), str) and isinstance(b.get("parent"), str)
    }


def wire_items(delta: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The last `WIRE_ITEMS` items a batch changed, newest first, as the socket carries them,
    and how many others it changed."""
    changed = list(delta["items"]) + list(delta.get("not_started") or [])
    shown = changed[-WIRE_ITEMS:][::-1]
    # A batch's rows are one per key; merged deltas keep the keys of the rows they dropped.
    count = sum(len(delta.get(f"{n}_keys") or delta.get(n) or ()) for n in ("items", "not_started"))
    return [wire_item(r) for r in shown], count - len(shown)


def _wire(delta: dict[str, Any], loop_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A delta as JSON-ready, bounded data for the websocket: the last `WIRE_ITEMS` changed
    items (newest first), top-level steps only, whole entries of the blocks that changed."""
    run = delta["run"]
    items, omitted = wire_items(delta)
    ended = run.get("status") in FINAL_STATUSES
    loops = run.get("loops") or {}
    touched = set(delta.get("blocks") or ())
    if loop_of:  # a loop's change may change its body blocks' states (`wire_blocks`)
        touched |= body_blocks(loop_of, touched)
    return {
        "seq": run.get("last_seq"),
        "run": wire_run(run),
        "blocks": wire_blocks(
            run.get("blocks") or {}, sorted(touched), ended=ended, loop_of=loop_of
        ),
        "loops": {k: v for k, v in loops.items() if k in touched},
        "items": items,
        "items_omitted": omitted,
        "steps": [wire_step(r) for r in delta["steps"] if not r.get("item_key")],
    }
