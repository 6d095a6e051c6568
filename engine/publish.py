"""Channel-layer publishing from the executor's event-loop thread.

Runs execute on their own loop (engine/runner.py) so that they never starve the web server's.
channels-redis works from any loop, but the in-memory layer (`make run` without REDIS_URL)
keeps asyncio queues that only deliver between coroutines of the loop the consumers wait on:
a publish from the executor thread is hopped onto the web server's loop, which the ASGI entry
(klyntos/asgi.py) records with `attach_web_loop`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)

# How often a hop waiting on the web loop looks whether that loop still runs: one stopped
# (the server shutting down) never runs what was handed to it, and the run would wait
# forever, its process with it.
HOP_CHECK_SECONDS = 0.25

_web_loop: asyncio.AbstractEventLoop | None = None


def attach_web_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop the websocket consumers run on (the server's one loop)."""
    global _web_loop
    if _web_loop is not loop:
        _web_loop = loop


def web_loop() -> asyncio.AbstractEventLoop | None:
    return _web_loop


class Dropped(RuntimeError):
    """The web server's loop stopped before it ran a hop that it had taken."""


async def group_send(group: str, message: dict[str, Any]) -> None:
    """`group_send` on the default layer, on the loop that layer delivers on.

    At most once, like the layer itself: a failure is logged and the database stays the truth.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        target = _web_loop
        here = asyncio.get_running_loop()
        if (
            isinstance(layer, InMemoryChannelLayer)
            and target is not None
            and target is not here
            and target.is_running()
        ):
            await _hop(target, layer.group_send(group, message))
        else:
            await layer.group_send(group, message)
    except Dropped:  # expected at a stop: no traceback
        log.info("dropped %s to %s: the web server stopped", message.get("type"), group)
    except Exception:
        log.warning("could not publish %s to %s", message.get("type"), group, exc_info=True)


async def _hop(target: asyncio.AbstractEventLoop, send: Coroutine[Any, Any, None]) -> None:
    """`send` run on `target`, waited for while `target` runs. A loop that stops after taking
    it (a server stopping between `is_running()` and the hop) drops it: at most once."""
    hop = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(send, target))
    while True:
        done, _ = await asyncio.wait({hop}, timeout=HOP_CHECK_SECONDS)
        if done:
            hop.result()
            return
        if not target.is_running():
            raise Dropped("the web server's loop stopped before delivering it")
