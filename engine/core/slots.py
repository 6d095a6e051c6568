"""Caps held across processes: what the core asks of a slot holder, and the keys it asks for.

A cap of N on a key means at most N holders of that key at once, wherever they run. With
KLYNTOS_EXECUTOR=workers the holder is `engine/slots.py` (slot leases in PostgreSQL, shared
by every worker); inline there is none and the in-process limits are the caps. `LocalSlots`
is the same contract in one process (tests, and anyone embedding the core without a
database).

Two users, one hook each:
- a Loop item holds a slot of `loop:<run id>:<loop block id>:<enclosing item key>` with the
  loop's cap from before it starts until it ends (`item_slot`). A parent item never waits
  for its own key: an inner loop's items hold slots of a key of their own (their enclosing
  item's), so nested loops cannot deadlock;
- a provider call with a concurrency cap (KLYNTOS_PROVIDER_LIMITS) holds a slot of
  `provider:<provider key>` after the process's registry let it through, until it ends
  (`hold_caps`); while it waits the step says so (`step.waiting`, reason `cluster`), and
  the wait is not part of the attempt's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Protocol

from engine.core.retry import ATTEMPT_TIMEOUT

__all__ = [
    "LocalSlots",
    "Notice",
    "Slots",
    "hold_caps",
    "item_slot",
    "loop_key",
    "provider_slot_key",
]

# The reason a step waiting for a cluster-wide provider slot gives (`step.waiting`).
CLUSTER_REASON = "cluster"


class Notice(Protocol):
    """Told when a hold has to wait (before waiting) and when that wait ended (always, once,
    after `waiting`: `got` is False when the hold was cancelled while waiting)."""

    def waiting(self, key: str, cap: int) -> None: ...

    def waited(self, key: str, seconds: float, got: bool) -> None: ...


class Slots(Protocol):
    """A holder of capped keys. `hold(key, cap)` is an async context manager: it enters once
    one of the key's `cap` slots is this holder's (its number, 0 … cap-1) and gives it back
    on exit, also on cancel. Different keys never wait for each other."""

    def hold(
        self, key: str, cap: int, notice: Notice | None = None
    ) -> AbstractAsyncContextManager[int]: ...


def loop_key(run_id: str, loop_block_id: str, enclosing_item: str) -> str:
    """The key of one loop's items: one per run, loop block and enclosing item ('' at the
    top level), so chunks of one loop on several workers share it, and an inner loop's items
    (enclosing item `loop[3]`) never share a key with their parent's."""
    return f"loop:{run_id}:{loop_block_id}:{enclosing_item}"


def provider_slot_key(provider: str) -> str:
    return f"provider:{provider}"


def item_slot(
    services: Any, loop_block_id: str, enclosing_item: str, cap: int, *, needed: bool = True
) -> AbstractAsyncContextManager[Any]:
    """What a loop item holds while it runs: a slot of its loop's key when the run's services
    have a slot holder and a run id (workers), else nothing (inline: the loop's window is the
    cap; or an item that is not `needed`: one a resumed run or a distributed loop's
    composition only reuses)."""
    slots: Slots | None = getattr(services, "slots", None)
    run_id = getattr(services, "run_id", "")
    if slots is None or not run_id or not needed:
        return contextlib.nullcontext()
    return slots.hold(loop_key(str(run_id), loop_block_id, enclosing_item), cap)


class _Bus(Protocol):
    def emit(self, type_: Any, **data: Any) -> Any: ...


class _Tag(Protocol):  # engine.core.providers.StepTag
    @property
    def item(self) -> str: ...
    @property
    def block(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def bus(self) -> _Bus: ...


class _StepNotice:
    """A provider call's wait for a cluster slot: `step.waiting`/`step.waited` on its step,
    and its attempt's timeout held meanwhile (like the registry's own waits)."""

    def __init__(
        self, tag: _Tag | None, provider: str, on_wait: Callable[[str], None] | None = None
    ) -> None:
        self.tag = tag
        self.provider = provider
        self.on_wait = on_wait
        self._left: float | None = None

    def waiting(self, key: str, cap: int) -> None:
        if self.on_wait is not None:
            self.on_wait(self.provider)
        deadline = ATTEMPT_TIMEOUT.get()
        when = deadline.when() if deadline is not None else None
        if deadline is not None and when is not None and not deadline.expired():
            self._left = max(0.0, when - asyncio.get_running_loop().time())
            deadline.reschedule(None)
        if self.tag is not None:
            self.tag.bus.emit(
                "step.waiting",
                item=self.tag.item,
                block=self.tag.block,
                name=self.tag.name,
                provider=self.provider,
                reason=CLUSTER_REASON,
                message=(
                    f"waiting for {self.provider}: {CLUSTER_REASON} "
                    f"(its {cap} slots are held across all workers)"
                ),
            )

    def waited(self, key: str, seconds: float, got: bool) -> None:
        deadline = ATTEMPT_TIMEOUT.get()
        if deadline is not None and self._left is not None and not deadline.expired():
            deadline.reschedule(asyncio.get_running_loop().time() + self._left)
        self._left = None
        if got and self.tag is not None:
            self.tag.bus.emit(
                "step.waited",
                item=self.tag.item,
                block=self.tag.block,
                name=self.tag.name,
                provider=self.provider,
                seconds=round(seconds, 3),
            )


async def hold_caps(
    slots: Slots,
    caps: Sequence[tuple[str, int]],
    tag: _Tag | None,
    on_wait: Callable[[str], None] | None = None,
) -> AsyncExitStack:
    """Holds a slot of `provider:<key>` for each (provider key, cap); the returned stack
    gives them back (`await stack.aclose()`). `on_wait(provider key)`: a hold must wait."""
    stack = AsyncExitStack()
    try:
        for provider, cap in caps:
            notice = _StepNotice(tag, provider, on_wait)
            hold = slots.hold(provider_slot_key(provider), cap, notice)
            await stack.enter_async_context(hold)
    except BaseException:
        await stack.aclose()
        raise
    return stack


class LocalSlots:
    """The slot contract in one process (no database): lowest free number first, waiters
    served in order."""

    def __init__(self) -> None:
        self._held: dict[str, set[int]] = {}
        self._waiting: dict[str, deque[asyncio.Future[int]]] = {}
        self.peaks: dict[str, int] = {}

    def held(self, key: str) -> int:
        return len(self._held.get(key, ()))

    @contextlib.asynccontextmanager
    async def hold(self, key: str, cap: int, notice: Notice | None = None) -> AsyncIterator[int]:
        number = await self._acquire(key, cap, notice)
        try:
            yield number
        finally:
            self._release(key, number)

    async def _acquire(self, key: str, cap: int, notice: Notice | None) -> int:
        held = self._held.setdefault(key, set())
        line = self._waiting.get(key)
        if not line:
            number = next((n for n in range(cap) if n not in held), None)
            if number is not None:
                return self._take(key, number)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._waiting.setdefault(key, deque()).append(future)
        if notice is not None:
            notice.waiting(key, cap)
        started = loop.time()
        got = False
        try:
            number = await future
            got = True
            return number
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(key, future.result())  # handed over as it was cancelled
            raise
        finally:
            if notice is not None:
                notice.waited(key, loop.time() - started, got)

    def _take(self, key: str, number: int) -> int:
        held = self._held.setdefault(key, set())
        held.add(number)
        self.peaks[key] = max(self.peaks.get(key, 0), len(held))
        return number

    def _release(self, key: str, number: int) -> None:
        held = self._held.get(key, set())
        held.discard(number)
        line = self._waiting.get(key)
        while line:
            future = line.popleft()
            if not future.done():
                future.set_result(self._take(key, number))
                break
        if not line:
            self._waiting.pop(key, None)
        if not held and key not in self._waiting:
            self._held.pop(key, None)
