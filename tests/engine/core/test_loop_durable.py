"""A loop item gives its slot back only once its rows are stored (`Services.durable`): after
a crash, the calls a resumed run makes again are at most the cap's worth."""

from __future__ import annotations

import asyncio
import contextlib

from engine.core.events import Event
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

CAP = 3
ENDS = ("item.finished", "item.failed")


def lookup_loop() -> dict:
    url = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=CAP),
            block("fetch", "http", "loop", url=url, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )


class SlowStore(Recorder):
    """Stands for the run's store: writes what ended every 50 ms, or at once when someone
    waits; each write takes 10 ms. Counts, at every item start, the items started and not
    stored yet (in flight, or ended but not written): what a crash at that moment repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.started = self.ended = self.stored = 0
        self.worst = 0
        self.wake = asyncio.Event()
        self.written = asyncio.Condition()

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if event.type == "item.started":
            self.started += 1
            self.worst = max(self.worst, self.started - self.stored)
        elif event.type in ENDS:
            self.ended += 1

    async def write_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.05)
            self.wake.clear()
            covers = self.ended
            await asyncio.sleep(0.01)
            async with self.written:
                self.stored = covers
                self.written.notify_all()

    async def durable(self) -> None:
        target = self.ended
        async with self.written:
            self.wake.set()
            await self.written.wait_for(lambda: self.stored >= target)


async def test_an_item_keeps_its_slot_until_its_rows_are_stored(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=2)
    store = SlowStore()
    writer = asyncio.create_task(store.write_forever())
    try:
        items = {"items": [{"domain": f"d{i}.example"} for i in range(60)]}
        outcome, _ = await run_graph(
            lookup_loop(), items, sim=sim, recorder=store, durable=store.durable
        )
    finally:
        writer.cancel()
    assert outcome.status == "succeeded" and store.started == 60
    # Items end every few ms and the store writes every 50 ms: without the wait, dozens
    # would be started and unstored at once.
    assert store.worst <= CAP, store.worst


async def test_without_a_store_items_give_their_slot_back_at_once(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=2)
    store = SlowStore()
    writer = asyncio.create_task(store.write_forever())
    try:
        items = {"items": [{"domain": f"d{i}.example"} for i in range(60)]}
        outcome, _ = await run_graph(lookup_loop(), items, sim=sim, recorder=store)
    finally:
        writer.cancel()
    assert outcome.status == "succeeded"
    assert store.worst > CAP  # what the first test's bound is made of
