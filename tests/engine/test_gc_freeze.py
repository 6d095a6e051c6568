"""While runs are in flight the collector's full passes skip what is frozen; when the last
run ends nothing stays frozen (cycles among frozen objects would otherwise never go)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from engine.gc_freeze import RUN_GEN0_THRESHOLD, GcFreezer


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


async def test_the_youngest_generation_is_collected_less_often_while_runs_are_in_flight() -> None:
    before = gc.get_threshold()
    freezer = GcFreezer(every=0.01)
    may_end = asyncio.Event()
    run = asyncio.create_task(freezer.around(may_end.wait()))
    await asyncio.sleep(0.02)
    assert gc.get_threshold() == (max(before[0], RUN_GEN0_THRESHOLD), *before[1:])
    may_end.set()
    await run
    assert gc.get_threshold() == before


async def test_each_loop_has_one_freezer_that_nested_runs_share() -> None:
    freezer = GcFreezer.of_loop()
    assert GcFreezer.of_loop() is freezer
    may_end = asyncio.Event()
    outer = asyncio.create_task(freezer.around(GcFreezer.of_loop().around(may_end.wait())))
    await asyncio.sleep(0.02)
    assert gc.get_freeze_count() > 0
    may_end.set()
    await outer
    assert gc.get_freeze_count() == 0


async def test_a_cycle_that_died_before_a_freeze_is_freed_not_frozen() -> None:
    import weakref

    class Node:
        other: Any = None

    freezer = GcFreezer(every=0.01)
    may_end = asyncio.Event()
    run = asyncio.create_task(freezer.around(may_end.wait()))
    await asyncio.sleep(0.02)
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle: reference counting never frees it
    gone = weakref.ref(first)
    del first, second
    await asyncio.sleep(0.05)  # a few freezes later, with gen-0 passes rare meanwhile
    assert gone() is None
    may_end.set()
    await run
