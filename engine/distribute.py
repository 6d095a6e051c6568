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
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from engine import chunks, leases, secrets_registry
from engine.blocks import REGISTRY
from engine.core.distribution import ChunkSpan
from engine.core.events import EventBus
from engine.core.executor import Executor, Interrupted
from engine.core.graph import Block, Graph, parse_graph
from engine.core.memo import Memo
from engine.core.redaction import Redactor
from engine.db_calls import DbThread, db_call
from engine.memo_rows import memo_for_chunk, memo_for_items, memo_for_loop
from engine.models import Run
from engine.store import RunStore

log = logging.getLogger(__name__)


class WorkerDistributor:
    """The coordinator's side (module docstring)."""

    def __init__(self, run_id: Any, graph: Graph, store: RunStore) -> None:
        self.run_id = run_id
        self.graph = graph
        self.store = store
        self.size = int(settings.KLYNTOS_LOOP_CHUNK_SIZE)
        self.engine: Executor | None = None  # set once the run's executor exists

    def wants(self, block: Block, total: int) -> bool:
        return total > self.size

    async def fan_out(
        self, block: Block, items: list[Any], order: list[int], progress: Any
    ) -> None:
        # The chunks start from the stored outputs of the blocks before the loop.
        await self.store.flush()
        count = await db_call(chunks.create, self.run_id, block.id, order, self.size)
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
                await asyncio.sleep(chunks.poll_seconds())
        except asyncio.CancelledError:
            if self.engine is None or not self.engine.stopping:
                record = db_call(
                    chunks.record_not_started, self.run_id, block.id, block.name, items
                )
                await asyncio.shield(record)
            raise
        finally:
            await asyncio.shield(looking.aclose())

    async def stored(self, block: Block, indexes: Sequence[int] | None) -> Memo:
        if indexes is None:
            return await db_call(memo_for_loop, self.run_id, self.graph, block.name)
        return await db_call(memo_for_items, self.run_id, block.name, list(indexes))


def _load_chunk(claim: chunks.ChunkClaim) -> tuple[Any, Block, Memo]:
    """The chunk's run (graph, input, owner's secrets and data) and the memo it starts from."""
    from engine.config import data_source
    from engine.runner import RunSpec

    run = Run.objects.select_related("version").get(pk=claim.run_id)
    graph = parse_graph(run.version.graph)
    loop = graph.block(claim.loop_block)
    keys = [f"{loop.name}[{index}]" for index in claim.indexes]
    memo = memo_for_chunk(run.pk, graph, keys, again=claim.executions > 0, retry_of=run.retry_of_id)
    spec = RunSpec(
        graph,
        run.input,
        secrets_registry.owner_env(run.owner_id),
        run.options or {},
        data_source(run.owner_id),
        run.workflow_id,
        owner_id=run.owner_id,  # the owner's result cache
    )
    return spec, loop, memo


async def execute_chunk(chunk_id: int) -> None:
    """Claim the chunk (nothing to do when it is taken or done, or its run ended), run its
    items, store their rows; mark it done, or give it back when stopping or failing."""
    from engine.runner import executor, run_options, run_services

    owner = leases.new_owner()
    claim = await db_call(chunks.claim, chunk_id, owner)
    if claim is None:
        return
    store = chunks.ChunkStore(claim.run_id, chunk_id, claim.loop_block, owner)
    task = asyncio.current_task()
    store.on_cancelled = task.cancel if task is not None else None
    engine: Executor | None = None
    services = None
    try:
        spec, loop, memo = await db_call(_load_chunk, claim)
        secrets_registry.register(spec.env.values())
        services = await run_services(spec, claim.run_id)
        services.durable = store.durable
        engine = Executor(
            spec.graph,
            REGISTRY,
            bus=EventBus(store.sink, Redactor(spec.env.values())),
            services=services,
            env=spec.env,
            options=run_options(spec, claim.run_id),
            memo=memo,
            item_gate=executor.chunk_items,
        )
        executor.started(engine)
        store.start()
        await engine.run_chunk(ChunkSpan(loop.id, claim.indexes), spec.input)
        store.outcome = (chunks.Status.DONE, "")
    except Interrupted:
        pass  # given back: the coordinator defers it again
    except asyncio.CancelledError:
        if not executor.stopping:  # cancelled with its run: nothing more to do for it
            store.outcome = (chunks.Status.DONE, "cancelled with the run")
        raise
    except Exception as exc:
        log.exception("chunk %s of run %s failed", chunk_id, claim.run_id)
        message = secrets_registry.redactor().text(f"{type(exc).__name__}: {exc}")
        store.outcome = (chunks.Status.RELEASED, message)
    finally:
        if engine is not None:
            executor.ended(engine)
        closing = asyncio.ensure_future(_close(store, services))
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await closing
            raise


async def _close(store: chunks.ChunkStore, services: Any) -> None:
    try:
        if services is not None:
            await services.aclose()
    finally:
        await store.suspend()  # its last rows, then the chunk's status (store.outcome)
