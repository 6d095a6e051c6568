"""What a worker keeps of a run between its chunks (engine/chunk_runs.py): the chunks of one
run executed on one event loop load the run once, share its services (one HTTP session,
whose connections stay warm) and hand their store thread, with its database connection, on
to the next chunk; what is kept is closed a linger after the run's last chunk here. This
process plays the worker: the coordinator's run and its chunks on one loop, as on a worker.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from engine import chunk_runs
from engine.chunk_runs import KeptRuns
from engine.distribute import execute_chunk
from engine.models import ItemRun, LoopChunk, Run
from engine.runner import execute_run, executor
from simulator.testing import RunningSimulator
from tests.engine.test_resume import calls_by_domain, lookups
from tests.engine.test_runner import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ITEMS = 40
CHUNK = 10


async def chunk_ids(run_id: Any) -> list[int]:
    return [pk async for pk in LoopChunk.objects.filter(run_id=run_id).values_list("pk", flat=True)]


async def test_the_chunks_of_one_run_share_its_load_services_and_store_connection(
    owner: Any, simulator: RunningSimulator, settings: Any, monkeypatch: Any
) -> None:
    settings.KLYNTOS_LOOP_CHUNK_SIZE = CHUNK
    settings.KLYNTOS_LOOP_CHUNKS_PER_WORKER = 10_000  # chunks of CHUNK items
    settings.KLYNTOS_CHUNK_POLL_SECONDS = 0.1
    monkeypatch.setattr(executor, "distributes", True)  # this process is the worker
    monkeypatch.setattr(chunk_runs, "LINGER_SECONDS", 0.2)
    opened: list[Any] = []
    build = chunk_runs.KeptRun.ensure_services

    async def counted(self: Any) -> Any:
        services = await build(self)
        if services not in opened:
            opened.append(services)
        return services

    monkeypatch.setattr(chunk_runs.KeptRun, "ensure_services", counted)
    memo_reads: list[int] = []
    read_memo = chunk_runs.memo_for_chunk

    def memo_for_chunk(*args: Any, **kwargs: Any) -> Any:
        memo_reads.append(len(args[2]))
        return read_memo(*args, **kwargs)

    monkeypatch.setattr(chunk_runs, "memo_for_chunk", memo_for_chunk)
    run = await sync_to_async(lookups)(owner, ITEMS)
    coordinator = asyncio.create_task(execute_run(run.pk))

    async def out_in_chunks() -> bool:
        return len(await chunk_ids(run.pk)) == ITEMS // CHUNK

    await wait_for(out_in_chunks)
    kept_runs = KeptRuns.of_loop()
    threads, backends = set(), set()
    for chunk_id in await chunk_ids(run.pk):  # one after another, as one chunk slot would
        await execute_chunk(chunk_id)
        kept = kept_runs.kept(run.pk)
        assert kept is not None and kept.users == 0
        threads |= {id(t) for t in kept._threads}
        # The connection its batches went on from the event loop, kept open for the next.
        (on_loop,) = kept._on_loop
        assert on_loop._connection is not None
        backends.add(on_loop._connection.info.backend_pid)
    await asyncio.wait_for(coordinator, 30)

    done = await Run.objects.aget(pk=run.pk)
    assert done.status == "succeeded", done.error
    assert (done.succeeded, done.failed) == (ITEMS, 0)
    assert kept.loads == 1  # the run was loaded for its first chunk only
    # The steps before the loop were read for the first chunk only; the others got a copy.
    assert memo_reads == [0]
    assert kept.top is not None and {item for item, _ in kept.top} == {""}
    assert len(opened) == 1  # one HTTP session (and data lease) for the four chunks
    assert len(threads) == 1  # one store thread, its connection handed on
    assert len(backends) == 1  # and one connection for the batches sent from the loop
    rows = ItemRun.objects.filter(run_id=run.pk).values_list("status", flat=True)
    assert Counter([s async for s in rows]) == Counter({"succeeded": ITEMS})
    assert sum(calls_by_domain(simulator, "clearbit").values()) == ITEMS
    # A linger after its last chunk, what was kept of the run is closed.
    await asyncio.sleep(0.5)
    assert kept_runs.kept(run.pk) is None and kept.closed
    assert on_loop._connection is None and kept._on_loop == []
    assert kept_runs._db is None  # the claims' connection too, with no run kept
    await sync_to_async(connections.close_all)()


async def test_a_chunk_store_publishes_its_items_at_most_once_a_chunk_poll(settings: Any) -> None:
    """An editor gets a chunk's items with the coordinator's next delta (a look at the chunks
    away), so a chunk's store sends them at most once per KLYNTOS_CHUNK_POLL_SECONDS: what
    changed meanwhile goes in the next message, each item once at its latest state."""
    from engine.chunks import ChunkStore

    settings.KLYNTOS_CHUNK_POLL_SECONDS = 0.2
    store = ChunkStore("run-1", 1, "loop", "owner:1")
    sent: list[list[tuple[str, str]]] = []

    async def send(delta: dict[str, Any]) -> None:
        sent.append([(row["key"], row["status"]) for row in delta["items"]])

    store._send = send  # type: ignore[method-assign]

    def delta(*items: tuple[str, str]) -> dict[str, Any]:
        rows = [{"key": key, "status": status} for key, status in items]
        return {"run": {}, "items": rows, "steps": [], "blocks": set()}

    await store._publish(delta(("l[0]", "running")))
    await store._publish(delta(("l[0]", "succeeded"), ("l[1]", "running")))
    await store._publish(delta(("l[1]", "succeeded")))
    assert sent == [[("l[0]", "running")]]  # the first at once, the others held
    await asyncio.sleep(0.25)
    await store._publish(None)  # the flusher's quiet tick
    assert sent[1:] == [[("l[0]", "succeeded"), ("l[1]", "succeeded")]]
    store._thread.shutdown(wait=False)
