"""Cooperative yielding for hot paths that may never suspend on their own.

A loop whose items finish without real I/O (transforms, answers already buffered) would run
item after item inside one worker task, and asyncio only looks at timers and sockets between
two passes over its ready queue: the run store's flusher and the other runs on the executor
loop would wait for the whole batch. `give_way()` is a time slice shared by every caller on
one event loop: once `SLICE_SECONDS` are used up, each caller steps back to the end of the
ready queue (one `sleep(0)`) until the next pass starts a new slice, so a pass lasts at most
about a slice plus one item per worker, and never the whole batch.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass

# Stretch of CPU after which callers of give_way() let timers, I/O and other tasks run.
SLICE_SECONDS = 0.005


@dataclass
class _Slice:
    until: float
    renewing: bool = False


_slices: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slice] = weakref.WeakKeyDictionary()


async def give_way(slice_seconds: float = SLICE_SECONDS) -> None:
    """Return at once within the current slice; past it, yield to the event loop."""
    loop = asyncio.get_running_loop()
    state = _slices.get(loop)
    if state is None:
        state = _slices[loop] = _Slice(time.monotonic() + slice_seconds)
    if time.monotonic() < state.until:
        return
    if not state.renewing:
        state.renewing = True

        def renew() -> None:
            state.until = time.monotonic() + slice_seconds
            state.renewing = False

        # Queued behind everything ready now: the new slice starts on the loop's next pass.
        loop.call_soon(renew)
    await asyncio.sleep(0)
