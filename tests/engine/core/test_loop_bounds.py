"""Run-wide bounds on loop items: in flight across nested loops, in all per run; a cancel
that stops a big nested run at once; a costly `priority` kept off the event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine.blocks import REGISTRY
from engine.core import expression_pool
from engine.core.distribution import RankedGate
from engine.core.events import EventBus
from engine.core.executor import Executor, RunOptions, RunOutcome
from engine.core.graph import parse_graph
from engine.core.in_flight import HELD, ItemPlaces
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.redaction import Redactor
from engine.core.services import Services
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import PROVIDER_HOSTS, Recorder, block, graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=d<l2.index>.example"
# A loaded machine gives this process a sliver of a CPU (a cancel costing under a second of
# CPU once took 3.7 s of wall time): the work a cancel, a stop or a refusal does is bounded in
# the process's CPU time; wall time only bounds waiting (a timer, a run that goes on).
WALL = 15.0


def nested(depth: int, cap: int = 1000, leaf: str = "transform", **top: Any) -> dict[str, Any]:
    """webhook → loop l0 → loop l1 → … → one leaf block, every loop over `<webhook.body.x>`."""
    blocks = [block("webhook", "webhook")]
    parent = None
    for level in range(depth):
        config = {"items": "<webhook.body.x>", "max_concurrent": cap}
        if level == 0:
            config.update(top)
        blocks.append(block(f"l{level}", "loop", parent, **config))
        parent = f"l{level}"
    if leaf == "transform":
        blocks.append(block("leaf", "transform", parent, input="<item>", expression="@"))
    else:
        blocks.append(block("leaf", "http", parent, url=LOOKUP, headers={"Authorization": "k"}))
    return graph(blocks, [("webhook", "l0")])


def executor_for(
    graph_json: dict[str, Any],
    options: RunOptions,
    recorder: Recorder,
    sim: RunningSimulator | None = None,
    item_gate: Any = None,
) -> tuple[Executor, Services]:
    overrides = {host: sim.base_url for host in PROVIDER_HOSTS} if sim else {}
    services = Services(outbound=OutboundFactory(OutboundConfig(host_overrides=overrides)))
    executor = Executor(
        parse_graph(graph_json),
        REGISTRY,
        bus=EventBus(recorder, Redactor([])),
        services=services,
        options=options,
        item_gate=item_gate,
    )
    return executor, services


async def run(
    graph_json: dict[str, Any],
    body: Any,
    options: RunOptions,
    sim: RunningSimulator | None = None,
    item_gate: Any = None,
) -> tuple[RunOutcome, Recorder, Executor]:
    recorder = Recorder()
    executor, services = executor_for(graph_json, options, recorder, sim, item_gate)
    try:
        outcome = await executor.run(body)
    finally:
        await services.aclose()
    return outcome, recorder, executor


def peak_in_flight(recorder: Recorder, loop: str | None = None) -> int:
    """The most items (of `loop`, or of every loop) started and not yet ended at once."""
    running = peak = 0
    for event in recorder.events:
        if loop is not None and event.data.get("loop") != loop:
            continue
        if event.type == "item.started":
            running += 1
            peak = max(peak, running)
        elif event.type in ("item.finished", "item.failed", "item.cancelled"):
            running -= 1
    return peak


async def test_nested_loops_share_the_runs_items_in_flight(sim: RunningSimulator) -> None:
    """Three nested loops of cap 1000: the run's working items (the innermost, which call
    out) never pass its limit, nor do its items of every level pass limit × depth."""
    sim.control.configure(latency_ms=20)
    body = {"x": list(range(4))}  # 4 × 4 × 4 = 64 calls
    outcome, recorder, executor = await run(
        nested(3, leaf="http"), body, RunOptions(max_items_in_flight=6), sim=sim
    )
    assert outcome.status == "succeeded", outcome.error
    assert len(recorder.of("step.finished", block="leaf")) == 64
    assert sim.control.stats()["peak_in_flight"]["clearbit"] <= 6
    assert peak_in_flight(recorder, "l2") <= 6
    assert peak_in_flight(recorder) <= 6 * 3
    assert executor.places.peak <= 6
    assert executor.places.held == 0  # every place given back


async def test_one_place_runs_nested_loops_without_deadlock() -> None:
    """A parent waiting for its inner loop lends it its place: one place is enough."""
    body = {"x": list(range(5))}
    outcome, recorder, executor = await asyncio.wait_for(
        run(nested(3), body, RunOptions(max_items_in_flight=1)), timeout=30
    )
    assert outcome.status == "succeeded", outcome.error
    assert len(recorder.of("step.finished", block="leaf")) == 125
    assert peak_in_flight(recorder, "l2") == 1
    assert executor.places.peak == 1


async def test_a_workers_share_is_lent_to_inner_loops_too() -> None:
    """A worker's process share (`item_gate`) of 2 places under loops of cap 1000: the
    parents holding both lend them to their inner loops instead of waiting forever."""
    gate = RankedGate(2)
    body = {"x": list(range(6))}
    outcome, _, _ = await asyncio.wait_for(
        run(nested(2), body, RunOptions(), item_gate=gate.lane()), timeout=30
    )
    assert outcome.status == "succeeded", outcome.error
    assert gate.free == 2


async def test_window_workers_are_created_only_with_a_place() -> None:
    """Loops of cap 1000 over 30 × 30 items with 10 places: the tasks alive at any moment
    stay a few dozen, never the caps' product (the cause of the runaway memory)."""
    body = {"x": list(range(30))}
    most = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, len(asyncio.all_tasks()))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        outcome, recorder, executor = await run(nested(2), body, RunOptions(max_items_in_flight=10))
    finally:
        done.set()
        await watcher
    assert outcome.status == "succeeded", outcome.error
    assert len(recorder.of("step.finished", block="leaf")) == 900
    # Per place: a worker, its item's step task and inner loop's spawner; plus a few.
    assert most <= 10 * 6 + 20, most


async def test_a_run_past_its_items_is_refused_fast_naming_the_loop() -> None:
    """1000 × 1000 × 1000 items: refused within the first thousands of items, with the
    loop, the count and the setting in the run's error; no item starts after."""
    body = {"x": [0] * 1000}
    started = time.process_time()
    outcome, recorder, _ = await asyncio.wait_for(  # a loaded machine once took 142 s
        run(nested(3), body, RunOptions(max_items_per_run=1_000_000)), timeout=300
    )
    took = time.process_time() - started
    assert outcome.status == "failed"
    error = outcome.error or ""
    assert "KLYNTOS_MAX_ITEMS_PER_RUN" in error
    assert "refused" in error and "loop 'l" in error
    assert "1,000,000" in error
    assert len(recorder.of("item.started")) < 20_000
    assert took < 30, took
    # The top-level loop's other items are recorded not started, with the reason.
    not_started = recorder.of("items.not_started", loop="l0")
    assert not_started and "KLYNTOS_MAX_ITEMS_PER_RUN" in not_started[0].data["error"]


async def test_a_single_loop_past_the_limit_is_refused_before_any_item() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block("l0", "loop", items="<webhook.body.x>"),
            block("leaf", "transform", "l0", input="<item>", expression="@"),
        ],
        [("webhook", "l0")],
    )
    outcome, recorder, _ = await run(g, {"x": [0] * 50}, RunOptions(max_items_per_run=49))
    assert outcome.status == "failed"
    assert "loop 'l0' refused: its 50 items" in (outcome.error or "")
    assert not recorder.of("item.started")
    outcome, _, _ = await run(g, {"x": [0] * 49}, RunOptions(max_items_per_run=49))
    assert outcome.status == "succeeded"


async def test_cancel_stops_a_big_nested_run_at_once() -> None:
    """1000 × 1000 items under way: a cancel ends the run within a second (generously
    bounded), and no item starts after it."""
    recorder = Recorder()
    executor, services = executor_for(nested(2), RunOptions(max_items_per_run=2_000_000), recorder)
    task = asyncio.create_task(executor.run({"x": [0] * 1000}))
    try:
        deadline = time.monotonic() + 120
        while len(recorder.of("item.started")) < 3000:
            assert time.monotonic() < deadline, "the run did not get going"
            await asyncio.sleep(0.01)
        cancelled_at, cpu_at = time.monotonic(), time.process_time()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert time.process_time() - cpu_at < 2.0
        assert time.monotonic() - cancelled_at < WALL
        started = len(recorder.of("item.started"))
        await asyncio.sleep(0.3)
        assert len(recorder.of("item.started")) == started
        assert len(asyncio.all_tasks()) < 20  # nothing left running on its behalf
        assert executor.places.held == 0
    finally:
        task.cancel()
        await services.aclose()


async def test_the_top_level_total_shows_at_once() -> None:
    """A huge nested run's progress has its top-level loop's total from its first event."""
    recorder = Recorder()
    executor, services = executor_for(nested(2), RunOptions(), recorder)
    task = asyncio.create_task(executor.run({"x": [0] * 500}))
    try:
        deadline = time.monotonic() + 10
        while not recorder.of("progress", loop="l0"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        first = recorder.of("progress", loop="l0")[0]
        assert first.data["total"] == 500
        assert not recorder.of("item.finished", loop="l0")
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await services.aclose()


SLOW_PRIORITY = "length([" + ", ".join(["@[?@==`0`]"] * 10) + "])"


async def test_a_costly_priority_neither_blocks_the_loop_nor_runs_on() -> None:
    """The priority ordering runs off the event loop (a ticker on it keeps ticking), fails
    the loop naming `priority` past its time, and its thread stops when it does."""
    g = graph(
        [
            block("webhook", "webhook"),
            block("l0", "loop", items="<webhook.body.x>", priority=SLOW_PRIORITY),
            block("leaf", "transform", "l0", input="<item>", expression="@"),
        ],
        [("webhook", "l0")],
    )
    body = {"x": [[0] * 100 for _ in range(5000)]}
    # Between two ticks: the wall time, and the CPU the loop's thread spent (what ran on the
    # loop). A loaded machine with the ordering's thread holding the interpreter lock once
    # left 1.8 s between ticks with the loop doing nothing: the work on it is what counts.
    gaps: list[float] = []
    cpu_gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last, last_cpu = time.monotonic(), time.thread_time()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now, now_cpu = time.monotonic(), time.thread_time()
            gaps.append(now - last)
            cpu_gaps.append(now_cpu - last_cpu)
            last, last_cpu = now, now_cpu

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        outcome, recorder, _ = await run(g, body, RunOptions(block_timeout=0.5))
    finally:
        done.set()
        await ticker
    took = time.monotonic() - started
    assert outcome.status == "failed"
    assert "l0: priority: ordering its 5000 items took longer than 0.5 s" in (outcome.error or "")
    assert took < 10, took
    assert max(cpu_gaps) < 0.4, max(cpu_gaps)
    assert max(gaps) < WALL / 3, max(gaps)  # not held for the whole ordering (seconds)
    assert not recorder.of("item.started")
    # The evaluation stops at its next value: its thread is free again soon.
    deadline = time.monotonic() + 5
    while expression_pool.POOL.running(""):
        assert time.monotonic() < deadline, "the priority kept its thread"
        await asyncio.sleep(0.01)


async def test_a_cheap_priority_still_orders_the_items() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block("l0", "loop", items="<webhook.body.x>", priority="@", max_concurrent=1),
            block("leaf", "transform", "l0", input="<item>", expression="@"),
        ],
        [("webhook", "l0")],
    )
    outcome, recorder, _ = await run(g, {"x": [3, 9, 1, "a", 5]}, RunOptions())
    assert outcome.status == "succeeded"
    assert [e.data["index"] for e in recorder.of("item.started")] == [1, 4, 0, 2, 3]


async def test_places_are_lent_once_and_given_back() -> None:
    places = ItemPlaces(1)
    place = await places.take()
    assert places.held == 1 and places.borrow() is None  # at top level: nothing to borrow
    token = HELD.set(place)
    try:
        lent = places.borrow()
        assert lent is not None and lent.borrowed
        assert places.borrow() is None  # one inner loop at a time
        await places.give_back(lent)
        assert places.held == 1 and not place.lent
        waiter = asyncio.create_task(places.take())
        await asyncio.sleep(0)
        assert places.contended()
        await places.give_back(place)
        assert places.held == 1  # handed to the waiter
        await places.give_back(await waiter)
        assert places.held == 0 and not places.contended()
    finally:
        HELD.reset(token)


async def test_a_stop_ends_a_big_nested_run_promptly() -> None:
    """The process stopping (SIGTERM's drain): loops start no more items, the items in
    flight finish and the run is left to resume, within a second or so, not after 1M."""
    from engine.core.executor import Interrupted

    recorder = Recorder()
    executor, services = executor_for(nested(2), RunOptions(max_items_per_run=2_000_000), recorder)
    task = asyncio.create_task(executor.run({"x": [0] * 1000}))
    try:
        deadline = time.monotonic() + 120
        while len(recorder.of("item.started")) < 3000:
            assert time.monotonic() < deadline, "the run did not get going"
            await asyncio.sleep(0.01)
        stopped_at, cpu_at = time.monotonic(), time.process_time()
        executor.interrupt()
        try:
            await asyncio.wait_for(task, timeout=2 * WALL)
        except Interrupted:
            pass
        assert time.process_time() - cpu_at < 3.0
        assert time.monotonic() - stopped_at < WALL
        assert len(recorder.of("item.started")) < 100_000
        assert executor.places.held == 0
    finally:
        task.cancel()
        await services.aclose()


async def test_sibling_inner_loops_share_their_items_place() -> None:
    """One place, an item with two inner loops side by side: the second borrows the
    item's place once the first gives it back, instead of waiting for a place forever."""
    g = graph(
        [
            block("webhook", "webhook"),
            block("l0", "loop", items="<webhook.body.x>", max_concurrent=1000),
            block("a", "loop", "l0", items="<webhook.body.x>", max_concurrent=1000),
            block("ta", "transform", "a", input="<item>", expression="@"),
            block("b", "loop", "l0", items="<webhook.body.x>", max_concurrent=1000),
            block("tb", "transform", "b", input="<item>", expression="@"),
        ],
        [("webhook", "l0")],
    )
    outcome, recorder, executor = await asyncio.wait_for(
        run(g, {"x": list(range(4))}, RunOptions(max_items_in_flight=1)), timeout=30
    )
    assert outcome.status == "succeeded", outcome.error
    assert len(recorder.of("step.finished", block="ta")) == 16
    assert len(recorder.of("step.finished", block="tb")) == 16
    assert executor.places.peak == 1 and executor.places.held == 0
