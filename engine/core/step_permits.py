"""The crash bound of a loop's body: what a resumed run repeats is at most the cap's worth
of calls per body block.

Each body block of a loop has `cap` permits. A step holds one from its start until its row
is stored (`Durability.stored_then`): a crash can only repeat the steps in flight and those
finished but not stored yet, and both hold a permit. The item's slot, on the other hand, is
free as soon as the item ends: the next item's first step does not wait for the last one's
row (an item waiting for its rows before giving its slot back cost each item a write's
round trip on its critical path).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol


class Durability(Protocol):
    """The run's store as a loop's body sees it (engine/store.py's RunStore)."""

    def stored_then(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every event so far is stored (at once if nothing will be)."""

    def hurry(self) -> None:
        """Someone waits on a `stored_then`: write now, not at the next interval."""


class StepPermits:
    """One loop's permits (its frame's: each run of a nested loop has its own)."""

    def __init__(self, cap: int, durability: Durability) -> None:
        self.cap = cap
        self.durability = durability
        self._by_block: dict[str, _Permits] = {}
        # Down to this many free, the store writes now: a permit is held for its step and
        # then until the next write, and a step should not have to wait for one.
        self.low = cap // 4
        # (item key, block id): permits items took for their first step before starting.
        self._ahead: set[tuple[str, str]] = set()

    async def take_ahead(self, item: str, block_id: str) -> None:
        """Take the permit of `item`'s first step before the item starts. An item waiting
        for it has not begun: its row is written once, when it ends, rather than once as
        running while it waits and again as ended (twice the database's work per item)."""
        await self.take(block_id)
        self._ahead.add((item, block_id))

    def claim_ahead(self, item: str, block_id: str) -> bool:
        """The step starts on the permit its item took ahead, if it took one."""
        if (item, block_id) not in self._ahead:
            return False
        self._ahead.discard((item, block_id))
        return True

    def release_ahead(self, item: str, block_id: str) -> None:
        """A permit taken ahead whose step does not run (skipped, reused, the item stopped):
        given back at once, as no row of it is waited for."""
        if (item, block_id) in self._ahead:
            self._ahead.discard((item, block_id))
            self._by_block[block_id].give_back()

    async def take(self, block_id: str) -> None:
        permits = self._by_block.get(block_id)
        if permits is None:
            permits = self._by_block[block_id] = _Permits(self.cap)
        await permits.take(self.durability)
        if permits.free <= self.low:
            self.durability.hurry()

    def give_back_when_stored(self, block_id: str) -> None:
        permits = self._by_block[block_id]
        self.durability.stored_then(permits.give_back)
        if permits.waiting or permits.free <= self.low:  # write this row now
            self.durability.hurry()


class _Permits:
    """A semaphore that says whether anyone waits (asyncio.Semaphore only says whether all
    are taken, and a store hurried whenever that holds would write once per step)."""

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> bool:
        return bool(self._waiters)

    async def take(self, durability: Durability) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        durability.hurry()  # the rows holding the permits are written now, not at the interval
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed to us as we were cancelled: pass it on
            elif waiter in self._waiters:  # give_back() may have dropped it already
                self._waiters.remove(waiter)
            raise

    def give_back(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # handed over: `free` does not move
                return
        self.free += 1
