"""What one provider rate has used, counted as a window rather than a bucket.

A call's share (1 request, its tokens) is reserved while it is in flight and counts from the
moment it ends until `window` seconds after (a provider's headers may add what it counted that
this process did not), so whatever window a provider measures, the calls it sees in it were
counted together here.
"""

from __future__ import annotations

import heapq


class RateWindow:
    """What one rate has used: reservations of calls in flight, plus each ended call's share
    until `window` seconds after it ended (and pauses a provider's headers asked for)."""

    __slots__ = ("_heap", "_sum", "reserved")

    def __init__(self) -> None:
        self.reserved = 0.0
        self._heap: list[tuple[float, float]] = []
        self._sum = 0.0

    def used(self, now: float) -> float:
        heap = self._heap
        while heap and heap[0][0] <= now:
            self._sum -= heapq.heappop(heap)[1]
        if not heap:
            self._sum = 0.0  # no float drift once everything has expired
        return self.reserved + self._sum

    def add(self, until: float, amount: float) -> None:
        if amount > 0:
            heapq.heappush(self._heap, (until, amount))
            self._sum += amount

    def free_at(self, excess: float) -> float | None:
        """When `excess` of what is counted now will have expired; None when only calls in
        flight can free it (their end is not known)."""
        freed = 0.0
        heap = list(self._heap)  # popped in order: usually only the first few are needed
        while heap:
            until, amount = heapq.heappop(heap)
            freed += amount
            if freed >= excess - 1e-9:
                return until
        return None
