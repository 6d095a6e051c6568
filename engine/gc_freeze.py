"""Keeps the garbage collector's full passes short while runs are in flight.

A full collection scans every object the process tracks. A 100,000-item run holds millions
(rows folded by the store, loop results), and the collector starts a full pass whenever a
quarter more objects survived since the last: about once a second, each stopping every
thread — the web server's too — for 0.3–0.5 s (bench e). While runs are in flight, every
half second what exists is frozen out of the scans (`gc.freeze`), so passes only look at
recent objects. Objects freed by reference counting are freed frozen or not; cycles among
frozen ones wait until the last run ends, when everything is unfrozen for the collector's
next full pass.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable
from typing import TypeVar

FREEZE_EVERY_SECONDS = 0.5

T = TypeVar("T")


class GcFreezer:
    """One per event loop that runs runs (the executor's); not thread-safe, loop-bound."""

    def __init__(self, every: float = FREEZE_EVERY_SECONDS) -> None:
        self.every = every
        self._active = 0
        self._task: asyncio.Task[None] | None = None

    async def around(self, work: Awaitable[T]) -> T:
        """Await `work` (a run) with freezing on while it is in flight."""
        self._active += 1
        if self._task is None:
            self._task = asyncio.create_task(self._freeze_forever())
        try:
            return await work
        finally:
            self._active -= 1
            if self._active == 0 and self._task is not None:
                self._task.cancel()
                self._task = None
                # No full pass forced here: it scans the whole heap with the GIL held (the
                # web server's ~200,000 objects: 0.1–0.5 s, a stall at every run's end).
                # Loops no longer hold their items' outputs (engine/core/result_needs.py),
                # so a run leaves few cycles behind; the collector's own schedule takes
                # them with its next full pass.
                gc.unfreeze()

    async def _freeze_forever(self) -> None:
        while True:
            gc.freeze()
            await asyncio.sleep(self.every)
