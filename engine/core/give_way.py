"""Cooperative yielding for hot paths that may never suspend on their own.

A loop whose items finish without real I/O (transforms, answers already buffered) would run
item after item inside one worker task, and asyncio only looks at timers and sockets between
two passes over its ready queue: the run store's flusher and the other runs on the executor
loop would wait for the whole batch. `give_way()` is a time slice shared by every caller on
one event loop, started by the first call in a pass over the ready queue: once
`SLICE_SECONDS` of it are used up, each caller steps back to the end of the ready queue (one
`sleep(0)`) until the next pass starts a new slice, so a pass lasts at most about a slice
plus one item per worker, and never the whole batch. While `PRIORITY` work
(a web request) is in progress, a used-up slice also sleeps `BACKOFF_SECONDS`, handing the
GIL — and so the process's CPU — to the request.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Stretch of CPU after which callers of give_way() let timers, I/O and other tasks run.
SLICE_SECONDS = 0.005
# While priority work is in progress, each used-up slice is followed by this much sleep: the
# GIL is then the priority thread's, and a run keeps at most a fifth of the process's CPU.
BACKOFF_SECONDS = 0.02


class PriorityWork:
    """Counts work in progress that must not share the CPU evenly with runs: the web
    server's requests (klyntos/asgi.py). Threads share the GIL fairly, so without this a
    request competes with every busy run thread for each slice of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        """Inside a coroutine on the priority work's own loop (the web server's)."""
        with self._lock:
            self._active += 1
            self._loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    @contextmanager
    def set_aside(self) -> Iterator[None]:
        """Inside `running()`: the request only waits for a while (for a run's answer), so
        runs go at full speed meanwhile."""
        with self._lock:
            self._active -= 1
        try:
            yield
        finally:
            with self._lock:
                self._active += 1

    def busy(self) -> bool:
        """Priority work is in progress on another loop than the caller's (a run on the
        server's own loop, as in tests, must not sleep in the request's way)."""
        return self._active > 0 and self._loop is not asyncio.get_running_loop()


PRIORITY = PriorityWork()


@dataclass
class _Slice:
    until: float = 0.0
    # A slice started in this pass: its marker, queued behind everything ready when the slice
    # started, runs at the start of the next pass and lets the next caller start another.
    marked: bool = False

    def unmark(self) -> None:
        self.marked = False


_slices: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slice] = weakref.WeakKeyDictionary()


async def give_way(slice_seconds: float = SLICE_SECONDS) -> None:
    """Return at once within the current slice; past it, yield to the event loop.

    A slice is a stretch of one pass over the ready queue: it starts with the pass's first
    call, not when the last one ended, so a caller after an idle wait (an item that ended
    on its own answer) goes on at once instead of handing its turn to everything ready."""
    loop = asyncio.get_running_loop()
    state = _slices.get(loop)
    if state is None:
        state = _slices[loop] = _Slice()
    now = time.monotonic()
    if not state.marked:
        state.marked = True
        state.until = now + slice_seconds
        loop.call_soon(state.unmark)
    if now < state.until:
        return
    if PRIORITY.busy():
        # Blocking on purpose: the sleep releases the GIL to the thread serving a request.
        time.sleep(BACKOFF_SECONDS)  # noqa: ASYNC251
    await asyncio.sleep(0)
