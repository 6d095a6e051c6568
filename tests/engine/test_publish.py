"""Publishing from the executor's loop to the in-memory layer, which delivers only on the web
server's loop: the hop there, and a server that stops while a publish is on its way."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer

from engine import publish
from engine.publish import attach_web_loop, group_send


@pytest.fixture
def web_loop(settings: Any) -> Iterator[asyncio.AbstractEventLoop]:
    """A server's loop on a thread of its own, recorded as the web loop."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    before = publish.web_loop()
    attach_web_loop(loop)
    yield loop
    publish._web_loop = before
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    # What a stopped loop was handed and never ran: let it end rather than be destroyed.
    left = asyncio.all_tasks(loop)
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    loop.close()


def test_a_publish_hops_to_the_web_loop_and_reaches_a_listener_there(
    web_loop: asyncio.AbstractEventLoop,
) -> None:
    layer = get_channel_layer()
    assert layer is not None

    async def listen() -> str:
        channel = await layer.new_channel()
        await layer.group_add("run-x", channel)
        return channel

    channel = asyncio.run_coroutine_threadsafe(listen(), web_loop).result(5)
    asyncio.run(group_send("run-x", {"type": "run.delta", "n": 1}))
    message = asyncio.run_coroutine_threadsafe(layer.receive(channel), web_loop).result(5)
    assert message == {"type": "run.delta", "n": 1}


def test_a_publish_the_web_loop_takes_as_it_stops_returns_instead_of_waiting_forever(
    web_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    """The server stops between the publish's look at its loop and the hop (a SIGTERM to
    `make run` while a run sends a delta): the hop is queued on a loop that never turns again.
    The run must go on, or its process never exits."""
    busy = threading.Event()
    release = threading.Event()

    def hold() -> None:  # the web loop busy with something else while the hop arrives
        busy.set()
        release.wait(5)

    web_loop.call_soon_threadsafe(hold)
    assert busy.wait(5)

    async def publish_then_stop() -> None:
        sending = asyncio.ensure_future(group_send("run-x", {"type": "run.delta"}))
        await asyncio.sleep(0.05)  # the hop is queued behind `hold`
        web_loop.call_soon_threadsafe(web_loop.stop)  # ... and the stop behind the hop
        release.set()
        await asyncio.wait_for(sending, 5)  # before the fix: never returned

    caplog.set_level(logging.INFO, logger="engine.publish")
    asyncio.run(publish_then_stop())
    assert not web_loop.is_running()
    # Expected at a stop: said in one line, without a traceback.
    assert [r.getMessage() for r in caplog.records] == [
        "dropped run.delta to run-x: the web server stopped"
    ]
    assert not any(r.exc_info for r in caplog.records)
