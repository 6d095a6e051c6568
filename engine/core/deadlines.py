"""Attempt deadlines on a coarse timer wheel: `asyncio.timeout`'s behaviour without a loop
timer per attempt.

Every step attempt runs under a deadline that nearly never fires. `asyncio.timeout` gives
each one a `TimerHandle` in the event loop's heap, whose pushes compare handles in Python:
at 5,000 items a second that was ~7 µs an item, an eighth of the engine's own cost per item
(measured with the network answered at once). Here a deadline joins the bucket of the
`TICK` its moment falls in (fired at the end of that tick: never early, at most `TICK` late)
and leaves it when its block ends; the loop holds one timer, for the earliest bucket that
has deadlines. Joining and leaving are a dict insert and pop.

`Deadline` behaves as `asyncio.Timeout` (3.11): entered in a task, it cancels the task when
due, and on the way out turns that cancellation (and only that one: `Task.uncancel`) into
`TimeoutError`; `when`, `reschedule` (None: never) and `expired` as there.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import weakref
from types import TracebackType

# Seconds per bucket: how late a deadline may fire.
TICK = 0.01

_CREATED, _ENTERED, _EXPIRING, _EXPIRED, _EXITED = range(5)


class Deadline:
    __slots__ = ("_when", "_state", "_task", "_cancelling", "_slot", "_wheel", "_soon")

    def __init__(self, when: float | None) -> None:
        self._when = when
        self._state = _CREATED
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._slot: int | None = None  # the wheel bucket it waits in
        self._wheel: _Wheel | None = None
        self._soon: asyncio.Handle | None = None  # due already when scheduled

    def when(self) -> float | None:
        return self._when

    def expired(self) -> bool:
        return self._state in (_EXPIRING, _EXPIRED)

    def reschedule(self, when: float | None) -> None:
        if self._state != _ENTERED:
            raise RuntimeError("a deadline can only be moved while it is entered and not due")
        self._unschedule()
        self._when = when
        if when is not None:
            self._schedule(asyncio.get_running_loop(), when)

    async def __aenter__(self) -> Deadline:
        if self._state != _CREATED:
            raise RuntimeError("a deadline is entered once")
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline is used inside a task")
        self._state = _ENTERED
        self._task = task
        self._cancelling = task.cancelling()
        if self._when is not None:
            self._schedule(loop, self._when)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._unschedule()
        if self._state == _EXPIRING:
            self._state = _EXPIRED
            assert self._task is not None  # noqa: S101 -- set on entering
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc  # our cancel, and nobody else's since
        elif self._state == _ENTERED:
            self._state = _EXITED

    def _schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if when <= loop.time():
            self._soon = loop.call_soon(self._on_timeout)
            return
        wheel = self._wheel = _wheel(loop)
        self._slot = wheel.add(self, when)

    def _unschedule(self) -> None:
        if self._slot is not None and self._wheel is not None:
            self._wheel.remove(self, self._slot)
        self._slot = self._wheel = None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None

    def _on_timeout(self) -> None:
        self._slot = self._wheel = self._soon = None
        if self._state != _ENTERED:
            return
        assert self._task is not None  # noqa: S101 -- set on entering
        self._task.cancel()
        self._state = _EXPIRING


def deadline_after(delay: float | None) -> Deadline:
    """A deadline `delay` seconds from now (None: never), like `asyncio.timeout(delay)`."""
    if delay is None:
        return Deadline(None)
    return Deadline(asyncio.get_running_loop().time() + delay)


class _Wheel:
    """One event loop's deadline buckets, by tick number, and its one timer (none while no
    deadline waits: nothing then refers to the loop, and a closed loop is let go)."""

    def __init__(self) -> None:
        self._buckets: dict[int, dict[Deadline, None]] = {}
        # Ticks that had a bucket, earliest first; a bucket emptied meanwhile is skipped.
        self._ticks: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf  # the tick the timer is set for

    def add(self, deadline: Deadline, when: float) -> int:
        tick = math.ceil(when / TICK)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
            heapq.heappush(self._ticks, tick)
            if tick < self._armed:
                self._arm(tick)
        bucket[deadline] = None
        return tick

    def remove(self, deadline: Deadline, tick: int) -> None:
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.pop(deadline, None)
            if not bucket:
                del self._buckets[tick]  # its tick stays in the heap until passed: skipped
                if not self._buckets:
                    self._disarm()

    def _arm(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = tick
        self._timer = asyncio.get_running_loop().call_at(tick * TICK, self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._armed = None, math.inf
        self._ticks.clear()

    def _fire(self) -> None:
        self._timer, self._armed = None, math.inf
        now = asyncio.get_running_loop().time()
        due: list[Deadline] = []
        while self._ticks and self._ticks[0] * TICK <= now:
            bucket = self._buckets.pop(heapq.heappop(self._ticks), None)
            if bucket:
                due.extend(bucket)
        while self._ticks and self._ticks[0] not in self._buckets:
            heapq.heappop(self._ticks)  # emptied before its time
        if self._ticks:
            self._arm(self._ticks[0])
        for deadline in due:  # in the order they were set
            deadline._on_timeout()


_wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wheel] = weakref.WeakKeyDictionary()


# The last loop asked about and its wheel: nearly always the same one.
_last: tuple[weakref.ref[asyncio.AbstractEventLoop], _Wheel] | None = None


def _wheel(loop: asyncio.AbstractEventLoop) -> _Wheel:
    global _last
    if _last is not None and _last[0]() is loop:
        return _last[1]
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = _Wheel()
    _last = (weakref.ref(loop), wheel)
    return wheel
