"""A loop's body step holds a permit until its row is stored (engine/core/step_permits.py):
after a crash, the calls a resumed run makes again are at most the cap's worth per block,
while an item's slot is free as soon as the item ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from engine.core.events import Event
from engine.core.step_permits import StepPermits
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

CAP = 3
STEP_ENDS = ("step.finished", "step.failed", "step.cancelled")
ITEM_ENDS = ("item.finished", "item.failed")


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
    """Stands for the run's store: writes what ended every 50 ms, or at once when hurried;
    each write takes 10 ms. Counts, at every start, the fetch steps (and the items) started
    and not stored yet (in flight, or ended but not written): what a crash then repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.stored = 0  # the events written: the first `stored` of `self.events`
        self.started: list[int] = []  # the event count at each fetch step's start
        self.items_started: list[int] = []
        self.worst = self.worst_items = 0
        self.wake = asyncio.Event()
        self.callbacks: list[tuple[int, Callable[[], None]]] = []
        self.writes: list[int] = []  # the event count each write covered

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if event.type == "step.started" and event.data.get("block") == "fetch":
            self.started.append(len(self.events))
            self.worst = max(self.worst, len(self.started) - self.stored_ends(step_end))
        elif event.type == "item.started":
            self.items_started.append(len(self.events))
            self.worst_items = max(
                self.worst_items, len(self.items_started) - self.stored_ends(item_end)
            )

    def stored_ends(self, is_end: Callable[[Event], bool]) -> int:
        return sum(1 for e in self.events[: self.stored] if is_end(e))

    async def write_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.05)
            self.wake.clear()
            covers = len(self.events)
            await asyncio.sleep(0.01)
            self.stored = covers
            self.writes.append(covers)
            due = [cb for target, cb in self.callbacks if target <= covers]
            self.callbacks = [(t, cb) for t, cb in self.callbacks if t > covers]
            for callback in due:
                callback()

    # Durability
    def stored_then(self, callback: Callable[[], None]) -> None:
        self.callbacks.append((len(self.events), callback))

    def hurry(self) -> None:
        self.wake.set()


def step_end(event: Event) -> bool:
    return event.type in STEP_ENDS and event.data.get("block") == "fetch"


def item_end(event: Event) -> bool:
    return event.type in ITEM_ENDS


async def run_with(store: SlowStore | None, sim: RunningSimulator) -> SlowStore:
    recorder = store or SlowStore()
    writer = asyncio.create_task(recorder.write_forever())
    try:
        items = {"items": [{"domain": f"d{i}.example"} for i in range(60)]}
        outcome, _ = await run_graph(
            lookup_loop(), items, sim=sim, recorder=recorder, durability=store
        )
    finally:
        writer.cancel()
    assert outcome.status == "succeeded" and len(recorder.started) == 60
    return recorder


async def test_a_step_keeps_its_permit_until_its_row_is_stored(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=2)
    store = await run_with(SlowStore(), sim)
    # Steps end every few ms and the store writes every 50 ms: without the permits, dozens
    # would be started and unstored at once.
    assert store.worst <= CAP, store.worst
    # An item starts once its first step can: one waiting for the permit has not begun, so
    # no write records it as running while it waits (to be written again as it ends).
    assert store.worst_items <= CAP, store.worst_items
    assert all(_started_when_its_step_could(store, i) for i in range(60))


def _started_when_its_step_could(store: SlowStore, index: int) -> bool:
    """No write fell between the item's start and its step's: it did not wait, begun."""
    events = store.events
    key = f"loop[{index}]"
    started = next(
        n for n, e in enumerate(events) if e.type == "item.started" and e.data["item"] == key
    )
    stepped = next(
        n for n, e in enumerate(events) if e.type == "step.started" and e.data["item"] == key
    )
    return not any(started < w <= stepped for w in store.writes)


async def test_without_a_store_there_are_no_permits(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=2)
    store = await run_with(None, sim)
    assert store.worst > CAP  # what the first test's bound is made of


async def test_a_waiting_step_hurries_the_store_and_a_cancelled_wait_passes_on() -> None:
    store = SlowStore()
    writer = asyncio.create_task(store.write_forever())
    permits = StepPermits(1, store)
    try:
        await permits.take("fetch")
        permits.give_back_when_stored("fetch")  # ended, not stored: the permit is still held
        second = asyncio.create_task(permits.take("fetch"))
        third = asyncio.create_task(permits.take("fetch"))
        await asyncio.sleep(0)
        assert store.wake.is_set()  # hurried: not left to the 50 ms interval
        second.cancel()
        await asyncio.wait_for(third, 1)  # the cancelled waiter did not swallow the permit
        assert second.cancelled()
        await asyncio.wait_for(permits.take("other"), 1)  # each block has its own permits
    finally:
        writer.cancel()
