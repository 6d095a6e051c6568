"""While runs are in flight the collector's full passes skip what is frozen; when the last
run ends nothing stays frozen (cycles among frozen objects would otherwise never go)."""

from __future__ import annotations

import asyncio
import gc

from engine.gc_freeze import GcFreezer


async def test_objects_are_frozen_while_runs_are_in_flight_and_unfrozen_after_the_last() -> None:
    freezer = GcFreezer(every=0.01)
    first_may_end, second_may_end = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(freezer.around(first_may_end.wait()))
    second = asyncio.create_task(freezer.around(second_may_end.wait()))
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 0
    first_may_end.set()
    await first
    assert gc.get_freeze_count() > 0  # another run is still in flight
    second_may_end.set()
    assert await second is True
    assert gc.get_freeze_count() == 0


async def test_a_cancelled_run_unfreezes_too() -> None:
    freezer = GcFreezer(every=0.01)
    run = asyncio.create_task(freezer.around(asyncio.sleep(3600)))
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 0
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    assert gc.get_freeze_count() == 0
