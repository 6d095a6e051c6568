"""One provider key's circuit breaker: its state (closed: counting; open: nothing passes;
half_open: probes), the outcomes it counted, its trips and end of cool-down, the clock of the
outage it gives up on, and the runs told of it.

What opens and closes it, and who hears of it, is the registry's (engine/core/providers.py);
when it opens and how it closes is its `BreakerPolicy` (engine/core/provider_settings.py).
"""

from __future__ import annotations

import itertools
import math
import time
import weakref
from collections import deque
from typing import Any

from engine.core.provider_settings import MAX_BREAKER_WINDOW, BreakerPolicy

# The changes a breaker remembers (`ProviderRegistry.breaker_changes`).
BREAKER_CHANGES = 100


class Breaker:
    """One key's breaker: closed (counting), open (nothing passes), half_open (probes)."""

    __slots__ = (
        "changes",
        "closed_at",
        "generation",
        "heard",
        "outage_since",
        "outcomes",
        "policy",
        "probes_in_flight",
        "probes_ok",
        "reason",
        "since",
        "state",
        "trips",
        "until",
    )

    def __init__(self) -> None:
        self.state = "closed"
        self.outcomes: deque[bool] = deque(maxlen=MAX_BREAKER_WINDOW)  # True: failed
        self.trips = 0
        self.since = 0.0
        self.until: float | None = None  # when an open auto breaker turns half-open
        self.closed_at = -math.inf
        # When this outage began here (loop time): it first opened since it last closed, or
        # this process joined another's open breaker. None while closed.
        self.outage_since: float | None = None
        self.reason = ""
        self.policy = BreakerPolicy()  # the policy it opened under
        self.probes_in_flight = 0
        self.probes_ok = 0
        # Bumped on every change: a call let through before it counts for nothing after it.
        self.generation = 0
        # Its last changes, (wall time, state, reason): what tests and the bench read.
        self.changes: deque[tuple[float, str, str]] = deque(maxlen=BREAKER_CHANGES)
        # The runs (their buses) told it is open, and the generation they heard last: they
        # hear every change until it closes.
        self.heard: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def enter(self, state: str, reason: str, until: float | None = None) -> None:
        """The bookkeeping of every change: the new state, its reason and end (an open auto
        breaker's end of cool-down), a new generation (calls let through before count for
        nothing after), no probes yet, no outcomes counted, and the change remembered."""
        self.state = state
        self.reason = reason
        self.until = until
        self.generation += 1
        self.probes_in_flight = self.probes_ok = 0
        self.outcomes.clear()  # empty already when it half-opens: nothing counts while open
        self.changes.append((time.time(), state, reason))

    def pristine(self) -> bool:
        return self.state == "closed" and not any(self.outcomes) and self.trips == 0

    def give_up_at(self) -> float | None:
        """When the calls held back by it fail instead (auto mode with `give_up_after`, not
        closed); None: they wait as long as it takes."""
        policy = self.policy
        if self.outage_since is None or policy.mode != "auto" or policy.give_up_after <= 0:
            return None
        return self.outage_since + policy.give_up_after

    def counted(self, window: int) -> tuple[int, int]:
        """(failed, counted) over the last `window` counted calls."""
        recent = list(itertools.islice(reversed(self.outcomes), window))
        return sum(recent), len(recent)
