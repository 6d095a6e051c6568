"""The rows of a distributed loop's chunks (engine/models.LoopChunk): creating them with
their jobs, the lease a chunk is executed under, the coordinator's look at them, and the
store that writes a chunk's item and step rows.

A chunk's store writes rows of its run like a run's store, but never the run's own row (the
coordinator's store keeps that): its batches renew the chunk's lease and count the chunk's
items on the chunk's row, which is what the coordinator reads for live progress and for the
fan-in.
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from engine import leases
from engine.core.counters import COUNTS
from engine.loop_connection import LoopConnection
from engine.models import FINAL_STATUSES, ItemRun, LoopChunk
from engine.publish import group_send
from engine.row_updates import RowUpdate
from engine.store import RunStore, group_name, merged, wire_items

Status = LoopChunk.Status
# A chunk whose executions keep ending unfinished (a crash, an error outside its items) is
# given up after this many: its remaining items fail with the reason, so the loop still ends.
MAX_EXECUTIONS = 3


@dataclass(frozen=True)
class ChunkClaim:
    run_id: Any
    loop_block: str
    indexes: tuple[int, ...]
    executions: int
    # Whether an execution before this one may have stored items: one that counted, or one
    # a graceful stop gave back (not counted as an execution, but its counters say what it
    # did). Such a chunk reads its stored items back instead of running them again.
    again: bool


def create(run_id: Any, loop_block: str, order: list[int]) -> int:
    """The loop's chunks and their jobs (none when they exist already: a resumed coordinator
    finds the ones it made). Returns how many chunks the loop has."""
    from engine.jobs import chunk_job

    with transaction.atomic():
        existing = LoopChunk.objects.filter(run_id=run_id, loop_block=loop_block).count()
        if existing:
            return existing
        size = chunk_size(len(order))
        chunks = LoopChunk.objects.bulk_create(
            LoopChunk(
                run_id=run_id,
                loop_block=loop_block,
                number=number,
                indexes=order[start : start + size],
                lease_expires=leases.expiry(),  # a queued chunk's job is looked for by then
            )
            for number, start in enumerate(range(0, len(order), size))
        )
    # After the commit: a worker's jobs are deferred on the worker's own connection, not in
    # this transaction, and a job must find its chunk. A job lost in between (a crash right
    # here) is deferred again by `look` once its chunk sat queued for a lease.
    jobs: list[dict[str, Any]] = [{"chunk_id": chunk.pk} for chunk in chunks]
    chunk_job.batch_defer(*jobs)  # one statement
    return len(chunks)


def chunk_size(total: int) -> int:
    """Items per chunk for a loop of `total` going out: about KLYNTOS_LOOP_CHUNKS_PER_WORKER
    chunks for each live worker, at least KLYNTOS_LOOP_CHUNK_SIZE, at most
    KLYNTOS_LOOP_CHUNK_MAX (or KLYNTOS_LOOP_CHUNK_SIZE when that is larger).

    A chunk costs the worker that takes it a fixed share of its event loop (claimed and
    loaded, its executor and store started, its last rows and lease stored, its job fetched
    and finished): at zero latency, chunks of 100 made one worker ~0.65× the inline
    executor, four chunks ~0.9×. A few per worker still spread a loop over every worker and
    let one that finishes early take the next; a chunk ahead of its turn waits unclaimed."""
    workers = max(1, live_workers())
    size = math.ceil(total / (workers * settings.KLYNTOS_LOOP_CHUNKS_PER_WORKER))
    smallest = settings.KLYNTOS_LOOP_CHUNK_SIZE
    return min(max(size, smallest), max(settings.KLYNTOS_LOOP_CHUNK_MAX, smallest))


def live_workers() -> int:
    """Worker processes whose heartbeat is recent (each takes chunks): each process beats
    once per queue it serves."""
    from engine.jobs import STALLED_SECONDS, WORKER_QUEUES

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM procrastinate_workers"
            " WHERE last_heartbeat > now() - %s * interval '1 second'",
            [STALLED_SECONDS],
        )
        row = cursor.fetchone()
    return math.ceil(int(row[0]) / len(WORKER_QUEUES)) if row else 0


def claim(chunk_id: int, owner: str) -> ChunkClaim | None:
    """Take the chunk if nobody executes it and its run goes on."""
    now = timezone.now()
    free = Q(lease_owner="") | Q(lease_expires__lt=now)
    with transaction.atomic():
        taken = (
            LoopChunk.objects.filter(free, pk=chunk_id)
            .exclude(status=Status.DONE)
            .exclude(run__status__in=FINAL_STATUSES)
            .select_for_update()
            .first()
        )
        if taken is None:
            return None
        LoopChunk.objects.filter(pk=chunk_id).update(
            status=Status.RUNNING,
            lease_owner=owner,
            lease_expires=leases.expiry(),
            worker=owner.rsplit(":", 1)[0],
            executions=taken.executions + 1,
        )
    ran_before = taken.executions > 0 or any(getattr(taken, name) for name in COUNTS)
    return ChunkClaim(
        taken.run_id, taken.loop_block, tuple(taken.indexes), taken.executions, ran_before
    )


@dataclass
class ChunkLook:
    counts: dict[str, int]
    done: bool
    chunks: int


def look(run_id: Any, loop_block: str, items: list[Any], loop_name: str) -> ChunkLook:
    """The coordinator's look: the loop's counts so far, whether every chunk is done, and —
    for chunks given back or whose worker died — a new job (or, past MAX_EXECUTIONS, their
    remaining items failed, so the fan-in is never blocked). Called on the coordinator's
    `DbThread`, whose connection serves every look."""
    from engine.jobs import chunk_job

    now = timezone.now()
    counts = dict.fromkeys(COUNTS, 0)
    done = True
    chunks = LoopChunk.objects.filter(run_id=run_id, loop_block=loop_block).order_by("number")
    rows = list(chunks.values("pk", "status", "lease_expires", "executions", "error", *COUNTS))
    waiting: set[int] | None = None  # chunks whose job waits in the queue (read when needed)
    for row in rows:
        for name in COUNTS:
            counts[name] += row[name]
        if row["status"] == Status.DONE:
            continue
        done = False
        # Its worker died (running), or its job never came (queued): either way past its
        # lease. A second job for a chunk is harmless: only one execution claims it.
        lost = row["status"] in (Status.RUNNING, Status.QUEUED) and (
            row["lease_expires"] is None or row["lease_expires"] < now
        )
        if row["status"] != Status.RELEASED and not lost:
            continue
        if row["status"] == Status.QUEUED:
            waiting = _queued_jobs() if waiting is None else waiting
            if row["pk"] in waiting:  # its job waits for a free slot: look again a lease later
                LoopChunk.objects.filter(pk=row["pk"]).update(lease_expires=leases.expiry())
                continue
        with transaction.atomic():
            again = LoopChunk.objects.filter(pk=row["pk"], status=row["status"]).select_for_update()
            if lost:
                again = again.filter(lease_expires__lt=now)
            if not again.exists():
                continue  # someone else took it meanwhile
            if row["executions"] >= MAX_EXECUTIONS:
                _give_up(run_id, row["pk"], items, loop_name, row["error"])
            else:
                again.update(status=Status.QUEUED, lease_owner="", lease_expires=leases.expiry())
                transaction.on_commit(partial(chunk_job.defer, chunk_id=row["pk"]))
    return ChunkLook(counts, done and bool(rows), len(rows))


def _queued_jobs() -> set[int]:
    """The chunks whose job is waiting or being taken (Procrastinate's own table)."""
    from engine.jobs import CHUNK_TASK

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (args->>'chunk_id')::bigint FROM procrastinate_jobs"
            " WHERE task_name = %s AND status IN ('todo', 'doing')",
            [CHUNK_TASK],
        )
        return {chunk_id for (chunk_id,) in cursor.fetchall()}


def _give_up(run_id: Any, chunk_id: int, items: list[Any], loop_name: str, error: str) -> None:
    chunk = LoopChunk.objects.get(pk=chunk_id)
    reason = f"its chunk of items ended unfinished {chunk.executions} times: {error or 'lost'}"
    at = timezone.now()
    keys = {f"{loop_name}[{i}]": i for i in chunk.indexes}
    ItemRun.objects.filter(run_id=run_id, key__in=keys).exclude(
        status__in=["succeeded", "failed", "cancelled", "not_started"]
    ).update(status="failed", error=reason, finished_at=at)
    ItemRun.objects.bulk_create(
        [
            ItemRun(
                run_id=run_id,
                key=key,
                loop_block=chunk.loop_block,
                index=index,
                status="failed",
                data=items[index] if index < len(items) else None,
                error=reason,
                finished_at=at,
            )
            for key, index in keys.items()
        ],
        ignore_conflicts=True,
    )
    terminal = dict(
        ItemRun.objects.filter(run_id=run_id, key__in=keys)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    LoopChunk.objects.filter(pk=chunk_id).update(
        status=Status.DONE,
        lease_owner="",
        lease_expires=None,
        error=reason,
        **{name: terminal.get(name, 0) for name in COUNTS},
    )


def record_not_started(run_id: Any, loop_block: str, loop_name: str, items: list[Any]) -> None:
    """The run was cancelled while its loop was out in chunks: items no chunk began are rows
    too (`not_started`); rows that exist keep what their chunk stored."""
    close_old_connections()
    at = timezone.now()
    for start in range(0, len(items), 1000):
        ItemRun.objects.bulk_create(
            [
                ItemRun(
                    run_id=run_id,
                    key=f"{loop_name}[{index}]",
                    loop_block=loop_block,
                    index=index,
                    status="not_started",
                    data=items[index],
                    error="not started: the run was cancelled before this item began",
                    finished_at=at,
                )
                for index in range(start, min(start + 1000, len(items)))
            ],
            ignore_conflicts=True,
        )


class ChunkStore(RunStore):
    """A chunk's rows: its items and steps, under the chunk's lease (module docstring).

    Its batches' items also go to the run's socket group as `run.items` messages (the last
    `WIRE_ITEMS` items changed, like a delta's), at most one per KLYNTOS_CHUNK_POLL_SECONDS:
    the run's consumer sends them with the coordinator's next delta (engine/consumers.py),
    so an editor's item list and table follow the items wherever they run. The run's
    counters, seq and workflow notices stay the coordinator's."""

    def __init__(
        self,
        run_id: Any,
        chunk_id: int,
        loop_block: str,
        lease_owner: str,
        thread: ThreadPoolExecutor | None = None,
        on_loop: LoopConnection | None = None,
    ) -> None:
        super().__init__(
            run_id, publish=True, lease_owner=lease_owner, thread=thread, on_loop=on_loop
        )
        self.chunk_id = chunk_id
        self.loop_block = loop_block
        # How the execution ended, written by `suspend()`: done, or given back (with why).
        self.outcome: tuple[str, str] = (Status.RELEASED, "")
        # Given back by a stop (a deploy's SIGTERM), not ended by a failure: not counted as
        # an unfinished execution, so chunks of hundreds of items are not given up after
        # MAX_EXECUTIONS restarts.
        self.stopped = False

    async def _publish(self, delta: dict[str, Any] | None) -> None:
        """`RunStore._publish` at most every KLYNTOS_CHUNK_POLL_SECONDS rather than every
        `interval`: an editor gets a chunk's items with the coordinator's next delta, which
        follows its look at the chunks (a poll, or a chunk's end here), so items sent more
        often only waited in its consumer — a message to Redis each on the items' event loop,
        and three or more chunks publishing at once on one worker."""
        if delta is not None:
            self._unsent = delta if self._unsent is None else merged(self._unsent, delta)
        now = asyncio.get_running_loop().time()
        if self._unsent is None or now - self._published_at < poll_seconds():
            return
        unsent, self._unsent = self._unsent, None
        self._published_at = now
        await self._send(unsent)

    async def _send(self, delta: dict[str, Any]) -> None:
        items, omitted = wire_items(delta)
        if items:
            message = {"type": "run.items", "items": items, "items_omitted": omitted}
            await group_send(group_name(self.run_id), message)

    def _counts(self) -> dict[str, int]:
        counts = self._progress.get((self.loop_block, ""), {})
        return {name: counts.get(name, 0) for name in COUNTS}

    def _live(self) -> QuerySet[Any]:
        return (
            LoopChunk.objects.filter(pk=self.chunk_id, lease_owner=self.lease_owner)
            .exclude(status=Status.DONE)
            .exclude(run__status__in=FINAL_STATUSES)
        )

    def _run_values(self, run: dict[str, Any]) -> dict[str, Any]:
        """The chunk row's part of a batch (its counters and lease), not the run row's."""
        return {"lease_expires": leases.expiry(), **self._counts()}

    def _write_run(self, run: dict[str, Any]) -> bool:
        """The thread's batch (in a transaction): the chunk row, and the providers its items
        met merged into the run's row (`_statements` does the same in one query)."""
        merge = self._providers_merge(run["providers"]) if run.get("providers") else None
        if merge is not None:
            with connection.cursor() as cursor:
                cursor.execute(*merge)
        return super()._write_run(run)

    def _live_rows(self) -> RowUpdate:
        # Every chunk's row alike: compiled once per worker, not per chunk. The parameters
        # in the order Django binds them (its filters' names sorted, then the excludes).
        where = [self.lease_owner, self.chunk_id, Status.DONE, *FINAL_STATUSES]
        return RowUpdate(self._live(), shape="chunk-live", where=where)

    def _release_update(self) -> tuple[RowUpdate, dict[str, Any]]:
        """The chunk's row: its status (`outcome`), counters, and no lease any more."""
        status, error = self.outcome
        rows = LoopChunk.objects.filter(pk=self.chunk_id, lease_owner=self.lease_owner)
        values: dict[str, Any] = {
            "status": status,
            "lease_owner": "",
            "lease_expires": None if status == Status.DONE else timezone.now(),
            "error": error[:2000],
            **self._counts(),
        }
        if self.stopped and status == Status.RELEASED:
            values["executions"] = F("executions") - 1  # its claim counted it
        return RowUpdate(
            rows, shape="chunk-release", where=[self.lease_owner, self.chunk_id]
        ), values


def poll_seconds() -> float:
    return float(settings.KLYNTOS_CHUNK_POLL_SECONDS)
