"""How a loop adjusts to what its items meet: adaptive concurrency, and its
`circuit_breaker` setting, which is the policy of the provider breaker for its items' calls.

Adaptive concurrency follows the brief (by default: start at 5 concurrent, fall back to 2 as
soon as an item fails): one slot more toward the cap per `window` successes counted since the
last change while their rate stays above `success_rate`; after a fall only items started
since count, so the ones in flight under the old limit cannot undo it at once. The breaker is
not the loop's: it lives per provider (engine/core/providers.py) and pauses instead of failing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any

from engine.core import provider_settings
from engine.core.provider_settings import BreakerPolicy


class ConcurrencyGate:
    """A slot limit that may change while items run (a fixed one when not adaptive)."""

    def __init__(self, cap: int, adaptive: Mapping[str, Any] | None) -> None:
        self.cap = cap
        self.adaptive = bool(adaptive) and cap > 1
        settings = adaptive or {}
        self.limit = min(cap, int(settings.get("start", min(5, cap)))) if self.adaptive else cap
        self.floor = (
            min(self.limit, int(settings.get("min", min(2, self.limit)))) if self.adaptive else cap
        )
        self.success_rate = float(settings.get("success_rate", 0.95))
        self.recent: deque[bool] = deque(maxlen=int(settings.get("window", 10)))
        # Counts the falls: an item started before the last fall (its ticket is older) ran
        # under the limit that failed, so its success says nothing of the new one.
        self.epoch = 0
        self.active = 0
        self._changed = asyncio.Condition()

    def restore(self, limit: int) -> None:
        """Go on from a limit it had reached before the run stopped (within its bounds)."""
        if self.adaptive:
            self.limit = max(self.floor, min(self.cap, limit))

    async def acquire(self) -> int:
        """Wait for a slot; the ticket to give back to `release` (when the item started)."""
        if not self.adaptive:
            return 0  # a fixed cap is the number of workers itself: nothing to wait for
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.limit)
            self.active += 1
            return self.epoch

    async def release(self, succeeded: bool | None, ticket: int | None = None) -> int | None:
        """Free a slot; `succeeded` None means no item ran; `ticket` is what `acquire`
        gave (None: as if taken now). Returns a new limit, if any."""
        if not self.adaptive:
            return None
        changed = None
        async with self._changed:
            self.active -= 1
            if succeeded is not None:
                changed = self.adapt(succeeded, self.epoch if ticket is None else ticket)
            self._changed.notify_all()
        return changed

    def adapt(self, succeeded: bool, ticket: int) -> int | None:
        """One item's outcome; the new limit when it changed. One slot more per `window`
        successes counted since the last change (a step up or a fall: the window starts
        empty again), of items started since the last fall; any failure falls to `min`."""
        before = self.limit
        if not succeeded:
            self.limit = self.floor
            self.recent.clear()
            self.epoch += 1
            return self.limit if self.limit != before else None
        if ticket != self.epoch:
            return None  # started before the fall: in flight under the limit that failed
        self.recent.append(succeeded)
        if len(self.recent) == self.recent.maxlen:
            rate = sum(self.recent) / len(self.recent)
            if rate >= self.success_rate and self.limit < self.cap:
                self.limit += 1  # additive increase; a failure cuts straight back to the floor
                self.recent.clear()  # the next slot takes a whole window of its own
        return self.limit if self.limit != before else None


def breaker_policy(
    config: Mapping[str, Any] | None, base: BreakerPolicy | None = None
) -> BreakerPolicy | None:
    """A loop's `circuit_breaker` as the provider breaker's policy for its items' calls
    (engine/core/providers.py): None when not set. A workflow saved before the breaker moved
    to the providers counted items (`min_items`): that is its `min_calls` now, and the count
    window grows to hold it. Raises ValueError naming the setting that is wrong."""
    if not config:
        return None
    values = {k: v for k, v in config.items() if k != "min_items"}
    if "min_items" in config and "min_calls" not in config:
        values["min_calls"] = config["min_items"]
    base = base or BreakerPolicy()
    if "min_calls" in values and "window" not in values:
        try:
            values["window"] = max(base.window, int(values["min_calls"]))
        except (TypeError, ValueError):
            pass  # the policy's own check names it
    return provider_settings.breaker_policy(values, base, "circuit_breaker")
