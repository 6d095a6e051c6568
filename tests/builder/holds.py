"""Holding a simulated provider's calls until a loop has its cap of them in flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from simulator.testing import RunningSimulator


@contextmanager
def held_until_in_flight(sim: RunningSimulator, endpoint: str, n: int) -> Iterator[None]:
    """`endpoint` answers nothing until `n` of its calls wait at once, then everything: a
    peak in flight asserted afterwards is the loop's cap, not how fast a loaded machine
    starts items (with calls of 40-100 ms, loaded CI-like machines peaked at 6 of 10 and 8
    of 10). Should `n` never wait at once, the calls go after a minute and the peak asserted
    after the run says how many did."""
    sim.control.configure(hold=[{"endpoint": endpoint}])

    def release() -> None:
        try:
            sim.control.wait_for(lambda s: s["held"][endpoint] >= n, timeout=60)
        finally:
            sim.control.release()

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        yield
    finally:
        sim.control.release()
        releaser.join()
