"""Loops spread over workers (KLYNTOS_EXECUTOR=workers, issue 8 item 4).

The worker executing a run is its coordinator. When it reaches a top-level loop of more than
KLYNTOS_LOOP_CHUNK_SIZE items (`engine.core.loop.distributable` says which loops can go), the
`WorkerDistributor` stores what the run did so far, creates the loop's chunks with one
`klyntos.loop_chunk` job each (one transaction), and looks at the chunk rows every
KLYNTOS_CHUNK_POLL_SECONDS: their counts are the loop's live progress, a chunk given back or
whose worker died is deferred again, and once every chunk is done — the fan-in, counted in
the database — the loop composes its output from the items' stored steps (reused, never run
again) and the blocks after it run once, on the coordinator.

`execute_chunk` is what a chunk job runs on any worker: it claims the chunk's lease, starts
from the stored outputs of the blocks before the loop, and runs its items (each item's
steps and rows exactly as in a local loop) under a store of its own (engine/chunks.py).
A killed coordinator is resumed like any run and finds its chunks where they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from engine import chunks, leases, secrets_registry
from engine.blocks import REGISTRY
from engine.chunk_runs import KeptRun, KeptRuns
from engine.core.distribution import ChunkSpan
from engine.core.events import EventBus
from engine.core.executor import Executor, Interrupted
from engine.core.graph import Block, Graph
from engine.core.memo import Memo
from engine.core.redaction import Redactor
from engine.db_calls import DbThread, db_call
from engine.loop_connection import LoopConnection
from engine.memo_rows import memo_for_items, memo_for_loop
from engine.store import RunStore

log = logging.getLogger(__name__)


class WorkerDistributor:
    """The coordinator's side (module docstring)."""

    def __init__(self, run_id: Any, graph: Graph, store: RunStore) -> None:
        self.run_id = run_id
        self.graph = graph
        self.store = store
        # A loop of more items than the smallest chunk goes out (`chunks.chunk_size` cuts it).
        self.smallest_chunk = int(settings.KLYNTOS_LOOP_CHUNK_SIZE)
        self.engine: Executor | None = None  # set once the run's executor exists

    def wants(self, block: Block, total: int) -> bool:
        return total > self.smallest_chunk

    async def fan_out(
        self, block: Block, items: list[Any], order: list[int], progress: Any
    ) -> None:
        # The chunks start from the stored outputs of the blocks before the loop.
        await self.store.flush()
        count = await db_call(chunks.create, self.run_id, block.id, order)
        log.info("run %s: loop %s out in %d chunks", self.run_id, block.name, count)
        # One connection for every look (a poll each KLYNTOS_CHUNK_POLL_SECONDS).
        looking = DbThread(f"chunk-look-{str(self.run_id)[:8]}")
        try:
            while True:
                look = await looking.call(chunks.look, self.run_id, block.id, items, block.name)
                progress(look.counts)
                if look.done:
                    break
                if self.engine is not None and self.engine.stopping:
                    raise Interrupted  # the chunks go on; whoever resumes the run waits for them
                # The next look a poll later, or as soon as a chunk of the run ends here.
                await chunk_ended.wait(self.run_id, chunks.poll_seconds())
        except asyncio.CancelledError:
            if self.engine is None or not self.engine.stopping:
                record = db_call(
                    chunks.record_not_started, self.run_id, block.id, block.name, items
                )
                await asyncio.shield(record)
            raise
        finally:
            chunk_ended.forget(self.run_id)
            await asyncio.shield(looking.aclose())

    async def stored(
        self, block: Block, indexes: Sequence[int] | None, *, outputs: bool = True
    ) -> Memo:
        if indexes is None:
            return await db_call(memo_for_loop, self.run_id, self.graph, block.name)
        return await db_call(memo_for_items, self.run_id, block.name, indexes, outputs)


async def execute_chunk(chunk_id: int) -> None:
    """Claim the chunk (nothing to do when it is taken or done, or its run ended), run its
    items, store their rows; mark it done, or give it back when stopping or failing. What
    the run's chunks share on this worker (its spec, services, store connections) is kept
    between them (engine/chunk_runs.py)."""
    from engine.runner import executor, run_options

    kept_runs = KeptRuns.of_loop()
    owner = leases.new_owner()
    claimed = await kept_runs.claim(chunk_id, owner)
    if claimed is None:
        return
    claim, kept, memo = claimed
    spec = kept.spec
    on_loop = kept.loop_connection()
    store = chunks.ChunkStore(
        claim.run_id,
        chunk_id,
        claim.loop_block,
        owner,
        thread=kept.store_thread(),
        on_loop=on_loop,
    )
    task = asyncio.current_task()
    store.on_cancelled = task.cancel if task is not None else None
    engine: Executor | None = None
    try:
        loop = spec.graph.block(claim.loop_block)
        secrets_registry.register(spec.env.values())
        # The run's services, shared with its other chunks here; its steps' permits wait on
        # this chunk's store.
        services = dataclasses.replace(await kept.ensure_services(), durability=store)
        engine = Executor(
            spec.graph,
            REGISTRY,
            bus=EventBus(store.sink, Redactor(spec.env.values())),
            services=services,
            env=spec.env,
            options=run_options(spec, claim.run_id),
            memo=memo,
            item_gate=executor.chunk_items.lane() if executor.chunk_items else None,
        )
        executor.started(engine)
        store.start()
        await engine.run_chunk(ChunkSpan(loop.id, claim.indexes), spec.input)
        store.outcome = (chunks.Status.DONE, "")
    except Interrupted:
        store.stopped = True  # given back: the coordinator defers it again
    except asyncio.CancelledError:
        if executor.stopping:  # past the drain time: given back too
            store.stopped = True
        else:  # cancelled with its run: nothing more to do for it
            store.outcome = (chunks.Status.DONE, "cancelled with the run")
        raise
    except Exception as exc:
        log.exception("chunk %s of run %s failed", chunk_id, claim.run_id)
        # The run's own secrets (never every owner's: the message reaches the run's owner).
        message = Redactor(spec.env.values()).text(f"{type(exc).__name__}: {exc}")
        store.outcome = (chunks.Status.RELEASED, message)
    finally:
        if engine is not None:
            executor.ended(engine)
        closing = asyncio.ensure_future(_close(store, on_loop, kept_runs, kept))
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await closing
            raise


async def _close(
    store: chunks.ChunkStore, on_loop: LoopConnection, kept_runs: KeptRuns, kept: KeptRun
) -> None:
    try:
        await store.suspend()  # its last rows, then the chunk's status (store.outcome)
    finally:
        kept.give_back_thread(store._thread)
        await kept.give_back_loop_connection(on_loop)
        kept_runs.release(kept)
        chunk_ended.tell(store.run_id)


class ChunkEnded:
    """Wakes a coordinator's wait for its chunks as soon as one of them ends in this
    process (its status written): with one worker, or the last chunk on the coordinator's
    worker, the fan-in is seen at once rather than up to KLYNTOS_CHUNK_POLL_SECONDS later.
    Chunks on other workers are seen by the poll as before."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    async def wait(self, run_id: Any, seconds: float) -> None:
        key = str(run_id)
        entry = self._waiting.get(key)
        if entry is None:
            entry = self._waiting[key] = (asyncio.get_running_loop(), asyncio.Event())
        try:
            await asyncio.wait_for(entry[1].wait(), seconds)
        except TimeoutError:
            pass
        entry[1].clear()

    def tell(self, run_id: Any) -> None:
        entry = self._waiting.get(str(run_id))
        if entry is None:
            return
        loop, event = entry
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def forget(self, run_id: Any) -> None:
        self._waiting.pop(str(run_id), None)


chunk_ended = ChunkEnded()
