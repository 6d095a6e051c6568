"""Waiting for a run to end without a thread: the channel layer tells, the database says.

Every run publishes `run.ended` to its group `run.<id>` once its last row is stored
(`engine/store.publish_run_ended`, from any process when the layer is Redis). A waiter joins
the group on a channel of its own *before* its first look at the database, so an end between
the two is still heard; it then sleeps in `receive` until that message or its deadline. The
layer delivers at most once, so the database has the last word at the deadline either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from channels.layers import get_channel_layer

from engine.store import group_name

T = TypeVar("T")


async def wait_for_end(
    run_id: Any, seconds: float, ended: Callable[[], Awaitable[T | None]]
) -> T | None:
    """`ended()` (what the run's end looks like, None while it runs) as soon as the run
    ends, or its value after `seconds`."""
    layer = get_channel_layer()
    if layer is None:
        return await ended()
    group = group_name(run_id)
    channel = await layer.new_channel("run-wait.")
    await layer.group_add(group, channel)
    try:
        result = await ended()
        if result is not None:
            return result
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                break
            if message.get("type") == "run.ended":
                break  # the run's progress deltas also come this way: only its end counts
        return await ended()
    finally:
        await layer.group_discard(group, channel)
