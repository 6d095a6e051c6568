"""A run's loop items in flight, all its loops together (nested ones included).

`max_concurrent` bounds one loop *instance*: nested loops multiply it (1000 × 1000 × 1000).
`ItemPlaces` bounds the run: a loop item runs in a place, and a run has `limit` of them
(KLYNTOS_MAX_ITEMS_IN_FLIGHT). A loop's window worker exists only while it holds a place,
so the tasks a loop creates are bounded by the places too, never by its cap.

No deadlock, however few the places: a parent item waiting for its inner loop does not hold
what its children need. It *lends* its place to that loop (`borrow`), whose first worker
runs on it: every place holder always has one way to go on down to the innermost items,
which end. Items waiting for a place hold nothing (a worker takes its place before it takes
an item). So at most `limit` places are held, each by a chain of one working item and the
parents it borrowed from (at most the loop depth), and working items are at most `limit`.

A worker's process share (`executor.item_gate`: a worker's `--concurrency` over its chunks)
is taken with the place and given back with it, so it is lent to inner loops the same way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import Any

__all__ = ["HELD", "ItemPlaces", "Place"]

# How often a loop waiting for a place looks whether it still needs one (it halted).
GIVE_UP_POLL = 0.05


class Place:
    """One place a window worker runs its items in: taken from the run's places, or
    borrowed from the parent item whose inner loop this worker belongs to (`lender`)."""

    __slots__ = ("lender", "lent")

    def __init__(self, lender: Place | None = None) -> None:
        self.lender = lender
        self.lent = False  # lent to an inner loop of the item running in it

    @property
    def borrowed(self) -> bool:
        return self.lender is not None


# The place the current item runs in (set by its window worker, read by its inner loops).
HELD: ContextVar[Place | None] = ContextVar("klyntos_item_place", default=None)


class ItemPlaces:
    """`limit` places for one run's loop items, handed out in arrival order."""

    def __init__(self, limit: int, gate: AbstractAsyncContextManager[Any] | None = None) -> None:
        if limit < 1:
            raise ValueError("a run needs at least one item in flight")
        self.limit = limit
        self.gate = gate
        self._free = limit
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.peak = 0  # the most places held at once

    @property
    def held(self) -> int:
        return self.limit - self._free

    def borrow(self) -> Place | None:
        """The place of the item this (inner) loop runs in, when it is not lent already:
        one worker of the loop runs on it. None at top level."""
        parent = HELD.get()
        if parent is None or parent.lent:
            return None
        parent.lent = True
        return Place(parent)

    def lendable(self) -> bool:
        """`borrow` would give a place now."""
        parent = HELD.get()
        return parent is not None and not parent.lent

    async def take(self) -> Place:
        """A place of the run's (and the process's share when there is one), waited for."""
        await self._acquire()
        try:
            if self.gate is not None:
                await self.gate.__aenter__()
        except BaseException:
            self._release()
            raise
        return Place()

    async def take_unless(
        self, give_up: Callable[[], bool], changed: Callable[[], asyncio.Future[None]]
    ) -> Place | None:
        """`take`, unless `give_up()` turns true meanwhile (None then): looked at whenever
        `changed()` (a future) resolves, and every `GIVE_UP_POLL` seconds. A loop whose
        items all went (or that halted) must not wait for a place its own parent holds."""
        if self.gate is None and self._free > 0 and not self._live_waiters():
            self._take()
            return Place()
        attempt = asyncio.ensure_future(self.take())
        try:
            while not attempt.done():
                either: set[asyncio.Future[Any]] = {attempt, changed()}
                await asyncio.wait(
                    either, timeout=GIVE_UP_POLL, return_when=asyncio.FIRST_COMPLETED
                )
                if not attempt.done() and give_up():
                    attempt.cancel()
                    await asyncio.wait({attempt})
        except BaseException:
            attempt.cancel()
            attempt.add_done_callback(self._unused)
            raise
        if attempt.cancelled():
            return None
        place = attempt.result()
        if give_up():
            await self.give_back(place)
            return None
        return place

    def _unused(self, attempt: asyncio.Future[Place]) -> None:
        """A place taken for a caller that stopped waiting: given back."""
        if not attempt.cancelled() and attempt.exception() is None:
            asyncio.ensure_future(self.give_back(attempt.result()))

    async def give_back(self, place: Place) -> None:
        if place.lender is not None:
            place.lender.lent = False  # back to the parent item, for its next inner loop
            return
        try:
            if self.gate is not None:
                await self.gate.__aexit__(None, None, None)
        finally:
            self._release()

    def contended(self) -> bool:
        """Someone waits for a place (or for the process's share): a worker that holds one
        hands it on after its item instead of taking another."""
        if self._live_waiters():
            return True
        contended = getattr(self.gate, "contended", None)
        return bool(contended()) if callable(contended) else False

    async def _acquire(self) -> None:
        if self._free > 0 and not self._live_waiters():
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a place as it was cancelled: hand it on
            raise

    def _live_waiters(self) -> bool:
        while self._waiting and self._waiting[0].done():
            self._waiting.popleft()  # cancelled while waiting
        return bool(self._waiting)

    def _take(self) -> None:
        self._free -= 1
        self.peak = max(self.peak, self.limit - self._free)

    def _release(self) -> None:
        self._free += 1
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():  # not cancelled while waiting
                self._take()
                future.set_result(None)
                return
