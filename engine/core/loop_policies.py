"""How a loop adjusts to what its items meet: adaptive concurrency and a circuit breaker.

Both follow the brief: start at 5 concurrent, grow toward the cap while the recent success
rate stays above 95 %, fall back to 2 as soon as an item fails; stop starting items once more
than 20 % of them fail.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
        self.active = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        if not self.adaptive:
            return  # a fixed cap is the number of workers itself: nothing to wait for
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def release(self, succeeded: bool | None) -> int | None:
        """Free a slot; `succeeded` None means no item ran. Returns a new limit, if any."""
        if not self.adaptive:
            return None
        changed = None
        async with self._changed:
            self.active -= 1
            if self.adaptive and succeeded is not None:
                changed = self._adapt(succeeded)
            self._changed.notify_all()
        return changed

    def _adapt(self, succeeded: bool) -> int | None:
        self.recent.append(succeeded)
        before = self.limit
        if not succeeded:
            self.limit = self.floor
            self.recent.clear()
        elif len(self.recent) == self.recent.maxlen:
            rate = sum(self.recent) / len(self.recent)
            if rate >= self.success_rate and self.limit < self.cap:
                self.limit += 1  # additive increase; a failure cuts straight back to the floor
        return self.limit if self.limit != before else None


@dataclass
class CircuitBreaker:
    failure_rate: float = 0.2
    min_items: int = 10
    done: int = 0
    failed: int = 0
    open: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> CircuitBreaker | None:
        if not config:
            return None
        return cls(float(config.get("failure_rate", 0.2)), int(config.get("min_items", 10)))

    def record(self, succeeded: bool) -> bool:
        """Count one finished item; True when this one opened the circuit."""
        self.done += 1
        self.failed += 0 if succeeded else 1
        if (
            not self.open
            and self.done >= self.min_items
            and self.failed / self.done > self.failure_rate
        ):
            self.open = True
            return True
        return False

    @property
    def reason(self) -> str:
        rate = self.failed / self.done if self.done else 0.0
        return (
            f"skipped: circuit breaker opened after {self.failed} of {self.done} items failed "
            f"({rate:.0%} > {self.failure_rate:.0%})"
        )
