"""A loop whose items never suspend still lets the other tasks of its event loop run."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from engine.core.give_way import BACKOFF_SECONDS, PRIORITY, give_way
from tests.engine.core.graphkit import Recorder, block, graph, run_graph


@dataclass
class Ticks:
    ticks: int = 0


@contextlib.asynccontextmanager
async def passes() -> AsyncIterator[Ticks]:
    """A task that ticks once per pass of the event loop, running from one pass on."""
    counter = Ticks()

    async def tick() -> None:
        while True:
            counter.ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        yield counter
    finally:
        task.cancel()


async def test_give_way_yields_only_once_the_slice_is_used_up() -> None:
    async with passes() as ticker:
        seen = ticker.ticks
        for _ in range(100):
            await give_way(slice_seconds=3600)  # this loop's first slice lasts an hour
        assert ticker.ticks == seen


async def test_give_way_yields_past_the_slice_and_starts_a_new_one_next_pass() -> None:
    async with passes() as ticker:
        seen = ticker.ticks
        await give_way(slice_seconds=0)  # a zero slice is always used up
        assert ticker.ticks > seen


async def test_a_caller_after_an_idle_wait_goes_on_at_once() -> None:
    await give_way(slice_seconds=0.005)  # a slice starts
    await asyncio.sleep(0.03)  # the loop idles for six slices' worth
    async with passes() as ticker:
        seen = ticker.ticks
        # A new pass, a new slice: an item that ended on its own answer starts the next at once.
        await give_way(slice_seconds=0.005)
        assert ticker.ticks == seen


async def test_a_loop_of_items_that_never_suspend_lets_other_tasks_run() -> None:
    body = [
        block("webhook", "webhook"),
        block("loop", "loop", items="<webhook.body.items>", max_concurrent=1000),
        block("square", "transform", "loop", input={"v": "<item>"}, expression="v"),
    ]
    recorder = Recorder()
    seen_done: list[int] = []  # items finished each time the neighbour got a turn
    finished = False

    async def neighbour() -> None:
        # Another task on the same loop (the run store's flusher, another run).
        while not finished:
            seen_done.append(len(recorder.of("item.finished")))
            await asyncio.sleep(0.001)

    other = asyncio.create_task(neighbour())
    await asyncio.sleep(0)
    outcome, _ = await run_graph(
        graph(body, [("webhook", "loop")]), {"items": list(range(20000))}, recorder=recorder
    )
    finished = True
    await other
    assert outcome.status == "succeeded"
    assert outcome.outputs["loop"]["succeeded"] == 20000
    # 20,000 items take far longer than one 5 ms slice: the neighbour ran while they did.
    assert any(0 < n < 20000 for n in seen_done), seen_done


async def test_runs_back_off_while_priority_work_is_served_on_another_loop() -> None:
    entered, leave = threading.Event(), threading.Event()

    def web_server() -> None:  # a request in progress on the server's own loop
        async def request() -> None:
            with PRIORITY.running():
                entered.set()
                await asyncio.to_thread(leave.wait, 10)

        asyncio.run(request())

    server = threading.Thread(target=web_server)
    server.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        await give_way(slice_seconds=0)  # a used-up slice while a request is served
        assert time.monotonic() - started >= BACKOFF_SECONDS
    finally:
        leave.set()
        server.join(10)
    assert not PRIORITY.busy()  # the request is over: runs go at full speed again


async def test_a_run_on_the_servers_own_loop_does_not_back_off_for_its_requests() -> None:
    with PRIORITY.running():
        assert not PRIORITY.busy()  # same loop: sleeping would only delay the request
