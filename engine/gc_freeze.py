"""Keeps the garbage collector's full passes short while runs are in flight.

A full collection scans every object the process tracks. A 100,000-item run holds millions
(rows folded by the store, loop results), and the collector starts a full pass whenever a
quarter more objects survived since the last: about once a second, each stopping every
thread — the web server's too — for 0.3–0.5 s (bench e). While runs are in flight, every
half second what exists is frozen out of the scans (`gc.freeze`), so passes only look at
recent objects. Objects freed by reference counting are freed frozen or not; cycles among
frozen ones wait until the last run ends, when everything is unfrozen for the collector's
next full pass.

The youngest generation is also collected less often while runs are in flight: by default a
pass starts every 700 allocations that outlived nothing, about once per item of a one-call
loop; each pass walks the objects still young, tens of µs, and together they were ~10 % of
the stored path's CPU (bench g). At `RUN_GEN0_THRESHOLD` they cost next to nothing, and a pass
over 10,000 young objects is still well under a millisecond. Each freeze collects the two young
generations first, so what died since the last freeze is not frozen with the living.

`execute_run` (engine/runner.py) goes through the freezer of its event loop, so the CLI, the
benchmarks and the in-process executor all run with it.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Awaitable
from typing import TypeVar

FREEZE_EVERY_SECONDS = 0.5
# The youngest generation's threshold while any run is in flight (the default is 700).
RUN_GEN0_THRESHOLD = 10_000

T = TypeVar("T")


class GcFreezer:
    """One per event loop that runs runs (the executor's); not thread-safe, loop-bound."""

    def __init__(self, every: float = FREEZE_EVERY_SECONDS) -> None:
        self.every = every
        self._active = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of_loop(cls) -> GcFreezer:
        """The running loop's freezer (one per loop, so nested runs share it)."""
        loop = asyncio.get_running_loop()
        freezer = _freezers.get(loop)
        if freezer is None:
            freezer = _freezers[loop] = cls()
        return freezer

    async def around(self, work: Awaitable[T]) -> T:
        """Await `work` (a run) with freezing on while it is in flight."""
        self._active += 1
        if self._task is None:
            self._task = asyncio.create_task(self._freeze_forever())
        _young_threshold.enter()
        try:
            return await work
        finally:
            _young_threshold.leave()
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
            # The young generations first (a few ms at most): cycles that died since the last
            # pass are freed now rather than frozen until the last run ends, which a rarer
            # gen-0 pass (RUN_GEN0_THRESHOLD) would otherwise let through by the thousand.
            gc.collect(1)
            gc.freeze()
            await asyncio.sleep(self.every)


class _YoungThreshold:
    """The process-wide gen-0 threshold, raised while any run on any loop is in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple[int, ...] = ()

    def enter(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                self._saved = gc.get_threshold()
                gen0, *older = self._saved
                gc.set_threshold(max(gen0, RUN_GEN0_THRESHOLD), *older)

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._saved:
                gc.set_threshold(*self._saved)


_young_threshold = _YoungThreshold()
_freezers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GcFreezer] = (
    weakref.WeakKeyDictionary()
)
