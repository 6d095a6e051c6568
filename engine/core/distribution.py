"""Spreading one loop's items over several processes (no Django here).

The executor running a run (the coordinator) may hand a top-level loop's items to a
`Distributor`: it executes them elsewhere in chunks and returns once every item is terminal;
what they did is read back as a memo, so the loop composes its outputs and aggregations over the
whole batch exactly as if it had run them (each item's steps are reused, never run again).
A chunk's own executor runs only its slice (`ChunkSpan`) and composes nothing. The loop
reads what its items did back a slice of items at a time (`stored`), so composing a big
batch holds one slice's outputs at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.core.graph import Block
    from engine.core.memo import Memo


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """The items (indexes, in dispatch order) of one loop that one chunk executes."""

    block_id: str
    indexes: tuple[int, ...]


class Distributor(Protocol):
    def wants(self, block: Block, total: int) -> bool:
        """Whether this loop's items go out in chunks (else the loop runs them itself)."""
        ...

    async def fan_out(
        self, block: Block, items: list[Any], order: list[int], progress: Any
    ) -> None:
        """Execute the loop's items elsewhere; return once all are terminal.
        `progress(counts)` reports live counts. Raises `Interrupted` when this process
        stops meanwhile."""
        ...

    async def stored(
        self, block: Block, indexes: Sequence[int] | None, *, outputs: bool = True
    ) -> Memo:
        """What the loop's items did, as a memo: for `indexes`, those items' own steps and
        failures (the loop composes a slice at a time); for None, every item's steps,
        failures and done items, its inner loops' items included. `outputs` False: the
        steps without their outputs (None), for a loop whose output nobody reads."""
        ...


class RankedGate:
    """A process's share of loop items in flight (a worker's `--concurrency`) over the
    chunks it executes, handed out oldest chunk first: each chunk gets a `lane`, ranked
    after every lane made before it, and a freed place goes to the waiting item of the
    lowest rank (then the longest waiting). So one chunk's items take the whole share
    while the next chunks are claimed and loaded, and a chunk's tail, end and store close
    overlap the next chunk's items rather than every chunk starting, draining and closing
    together. Within a chunk (and its inner loops) items are served first come, as by a
    semaphore."""

    def __init__(self, value: int) -> None:
        if value < 1:
            raise ValueError("a gate needs at least one place")
        self._free = value
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._ranks = itertools.count()

    def lane(self) -> GateLane:
        return GateLane(self, next(self._ranks))

    @property
    def free(self) -> int:
        return self._free

    async def acquire(self, rank: int) -> None:
        if self._free > 0 and not self._live_waiters():
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a place as it was cancelled: hand it on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():  # not cancelled while waiting
                future.set_result(None)
                return
        self._free += 1

    def contended(self) -> bool:
        """An item waits for a place (a holder hands its place on after its item)."""
        return self._live_waiters()

    def _live_waiters(self) -> bool:
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)
        return bool(self._waiting)


class GateLane:
    """One chunk's way through a `RankedGate`: `async with lane:` holds a place."""

    __slots__ = ("gate", "rank")

    def __init__(self, gate: RankedGate, rank: int) -> None:
        self.gate = gate
        self.rank = rank

    async def __aenter__(self) -> None:
        await self.gate.acquire(self.rank)

    def contended(self) -> bool:
        return self.gate.contended()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.gate.release()
