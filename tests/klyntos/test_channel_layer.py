"""The Redis channel layer survives an idle socket: a consumer waiting longer than the
layer's 5 s blocking receive still hears the next message (redis-py 8's default 5 s read
timeout used to fail that receive, and daphne closed the socket with 1011)."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer
from django.conf import settings


async def test_a_receive_idle_past_the_blocking_window_still_gets_its_message() -> None:
    assert settings.REDIS_URL, "the suite runs against Redis"
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(7)  # past the layer's 5 s BZPOPMIN and redis-py's old 5 s default
    assert not receiving.done(), receiving.exception()  # still waiting, not failed
    await layer.send(channel, {"type": "hello"})
    assert (await asyncio.wait_for(receiving, 10)) == {"type": "hello"}
