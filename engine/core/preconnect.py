"""A loop's first calls go out on connections opened while the loop starts.

A loop starts its first window of items at once, and each item's first blocks build their
requests in turn, on one event loop. Without a connection ready, every request then waits
for its own to open, and a connect completes only once the event loop comes back to it:
after every item of the window has built its requests. On the lead template's ten leads
that kept the first request ~40 ms from the wire while the window's thirty were built.

So a loop first opens, for each origin its body's first blocks call (blocks with nothing
before them in the body, whose config says where they call: `origin()` of Agent, HTTP with a
written host, Slack), one connection per such block and item of its first window, and waits
for them at most `OutboundConfig.preconnect_wait`. What is still connecting then is stopped:
the items open their own, as they did before. Nothing is sent; the SSRF guard and host
overrides apply as to any request (`OutboundFactory.preconnect`). A worker's chunks open
none ahead (see `open_first_connections`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

from engine.core.graph import Block

if TYPE_CHECKING:
    from engine.core.executor import Executor


def first_call_origins(executor: Executor, loop: Block) -> Counter[str]:
    """Each URL the loop body's first blocks call → how many of them call it per item."""
    before = executor.graph.predecessors(loop.id)
    origins: Counter[str] = Counter()
    for block in executor.graph.children(loop.id):
        if before.get(block.id):
            continue  # starts after another block of the item: a connection is free by then
        url = executor.registry[block.type].origin(block.config, executor.services)
        if url:
            origins[url] += 1
    return origins


async def open_first_connections(executor: Executor, loop: Block, width: int) -> int:
    """Connections for the first `width` items' first calls, within the configured wait;
    how many are ready."""
    outbound = executor.services.outbound
    if outbound.config.preconnect_wait <= 0 or width < 1:
        return 0
    if executor.item_gate is not None:
        # A worker's chunk: its items take places in the gate all the worker's chunks share,
        # so far fewer go at once than its loop's cap, while each chunk opening a cap's worth
        # ahead took 50-130 ms of connects (bench w: 100 per chunk, 50 items in flight).
        return 0
    origins = first_call_origins(executor, loop)
    if not origins:
        return 0
    # Together: origins a host override sends to one server share its idle connections.
    opening = [
        asyncio.ensure_future(outbound.preconnect(url, calls * width))
        for url, calls in origins.items()
    ]
    try:
        done, pending = await asyncio.wait(opening, timeout=outbound.config.preconnect_wait)
    finally:
        for task in opening:
            task.cancel()  # no-op for those done
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return sum(task.result() for task in done if not task.cancelled() and not task.exception())
