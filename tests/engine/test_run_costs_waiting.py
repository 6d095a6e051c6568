"""The sequential time (and so the speedup) counts the work the steps did, not the time they
waited for a provider: a paused breaker, a concurrency slot, a rate grant. Items that wait
out the same pause side by side were not each working, and counting their waits made up a
speedup (200 leads through a 20-second outage read "10× faster"). Runs on PostgreSQL and
SQLite alike."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connections

from builder.services import run_create, workflow_create
from engine import run_costs
from engine.core.events import EventBus
from engine.core.redaction import Redactor
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run
from simulator.testing import RunningSimulator
from tests.engine.graphs import burst_graph, lookup_burst_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ITEMS = 10
LATENCY_S = 0.1


def summary_of(run_id: Any) -> dict[str, Any]:
    cache.clear()
    return run_costs.summary(Run.objects.select_related("version").get(pk=run_id))


def fetch_graph() -> dict[str, Any]:
    """The burst graph whose loop body calls Clearbit for each item, ten items at once."""
    return lookup_burst_graph(max_concurrent=ITEMS)


def test_items_waiting_for_a_provider_slot_do_not_count_as_sequential_work(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """Ten items at once through a provider capped at one call in flight: the calls go one
    after another, so the items mostly wait for the slot (the k-th about k calls' time).
    Their durations add up to about five times the wall time; the work they did, one
    call each, to about the wall time. The sequential time is that work (each item's
    duration less its waits, which the rows record), and the speedup about 1, not 5."""
    settings.KLYNTOS_PROVIDER_LIMITS = "api.clearbit.com=1"
    simulator.control.configure(latency_ms=int(LATENCY_S * 1000), jitter_ms=None)
    workflow = workflow_create(owner=owner, name="capped", graph=fetch_graph())
    items = [{"domain": f"d{i}.example"} for i in range(ITEMS)]
    run, _ = run_create(workflow=workflow, input={"items": items})
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    assert (run.status, run.succeeded) == ("succeeded", ITEMS), run.error
    assert simulator.control.stats()["peak_in_flight"]["clearbit"] == 1

    rows = list(ItemRun.objects.filter(run=run, parent_key=""))
    steps = {s.item_key: s for s in StepRun.objects.filter(run=run, block_id="fetch")}
    # The waits are recorded, on the step and on its item, and are part of their durations.
    waited = [r.waited for r in rows]
    assert sum(1 for w in waited if w > 0) >= ITEMS - 2, waited
    for row in rows:
        assert steps[row.key].waited == pytest.approx(row.waited)
        assert 0 <= row.waited <= row.duration
        assert steps[row.key].waited <= steps[row.key].duration
    # The k-th item waited for about the k calls before it: the waits are most of the time.
    assert sum(waited) > 2 * ITEMS * LATENCY_S

    found = summary_of(run.pk)
    top = StepRun.objects.filter(run=run, item_key="").exclude(block_id="loop")
    working = sum(r.duration - r.waited for r in rows) + sum(s.duration - s.waited for s in top)
    assert found["sequential_seconds"] == pytest.approx(working, rel=1e-9)
    assert found["waited_seconds"] == pytest.approx(sum(waited) + sum(s.waited for s in top))
    # What each item's step did: one call (the item's own overhead is all that is added).
    step_work = sum(s.duration - s.waited for s in steps.values())
    assert step_work <= found["sequential_seconds"] <= step_work + 0.05 * ITEMS
    # Before, the sum of the durations (waits included): about five times the wall.
    durations = sum(r.duration for r in rows)
    assert found["sequential_seconds"] < durations - 2 * ITEMS * LATENCY_S
    wall = found["wall_seconds"]
    assert wall >= ITEMS * LATENCY_S  # the calls went one at a time
    assert found["speedup"] < 1.5, (found, durations / wall)


async def test_the_store_records_each_steps_waits_and_the_sum_leaves_them_out(
    owner: Any,
) -> None:
    """Waits folded from `step.waited` events: summed over a step's attempts on its row,
    added to its item's row and to the enclosing item's (whose duration includes its inner
    items'); the sequential time is each top-level item's and top-level step's duration less
    its waits, never below 0 (two steps that waited side by side)."""
    from engine.store import RunStore

    workflow = await sync_to_async(workflow_create)(owner=owner, name="w", graph=burst_graph())
    run, _ = await sync_to_async(run_create)(workflow=workflow, input={"items": []})
    store = RunStore(run.pk, interval=60, publish=False)
    store.start()
    bus = EventBus(store.sink, Redactor())

    def step(item: str, block: str, waits: list[float], duration: float) -> None:
        bus.emit("step.started", item=item, block=block, name=block)
        for seconds in waits:
            bus.emit(
                "step.waiting",
                item=item,
                block=block,
                name=block,
                provider="api.clearbit.com",
                reason="breaker",
                message="paused: api.clearbit.com breaker open",
            )
            bus.emit(
                "step.waited",
                item=item,
                block=block,
                name=block,
                provider="api.clearbit.com",
                seconds=seconds,
            )
        bus.emit("step.finished", item=item, block=block, name=block, output={}, duration=duration)

    def item(key: str, index: int, parent: str = "", loop: str = "loop") -> None:
        bus.emit("item.started", item=key, loop=loop, index=index, parent=parent, data={})

    bus.emit("run.started")
    step("", "webhook", [1.0], 1.25)
    # An item through a 20-second pause, its step waiting twice (two attempts).
    item("loop[0]", 0)
    step("loop[0]", "square", [15.0, 5.0], 20.5)
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=20.6)
    # An item whose inner loop's item waited: the outer item's duration includes it.
    item("loop[1]", 1)
    item("loop[1]/inner[0]", 0, parent="loop[1]", loop="inner")
    step("loop[1]/inner[0]", "square", [3.0], 3.1)
    bus.emit("item.finished", item="loop[1]/inner[0]", loop="inner", index=0, duration=3.2)
    bus.emit("item.finished", item="loop[1]", loop="loop", index=1, duration=3.5)
    # Two steps of one item that waited side by side: 10 s of waits in 5.5 s.
    item("loop[2]", 2)
    step("loop[2]", "square", [5.0], 5.2)
    step("loop[2]", "other", [5.0], 5.3)
    bus.emit("item.finished", item="loop[2]", loop="loop", index=2, duration=5.5)
    # An item that never waited.
    item("loop[3]", 3)
    step("loop[3]", "square", [], 0.4)
    bus.emit("item.finished", item="loop[3]", loop="loop", index=3, duration=0.5)
    await store.close({"status": "succeeded"})
    await sync_to_async(connections.close_all)()

    def rows() -> tuple[dict[str, float], dict[tuple[str, str], float]]:
        items = dict(ItemRun.objects.filter(run=run).values_list("key", "waited"))
        steps = {
            (k, b): w
            for k, b, w in StepRun.objects.filter(run=run).values_list(
                "item_key", "block_id", "waited"
            )
        }
        return items, steps

    items, steps = await sync_to_async(rows)()
    assert items == {
        "loop[0]": 20.0,
        "loop[1]": 3.0,
        "loop[1]/inner[0]": 3.0,
        "loop[2]": 10.0,
        "loop[3]": 0.0,
    }
    assert steps[("loop[0]", "square")] == 20.0  # both attempts' waits
    assert steps[("", "webhook")] == 1.0 and steps[("loop[3]", "square")] == 0.0

    def summary() -> dict[str, Any]:
        Run.objects.filter(pk=run.pk).update(
            finished_at=Run.objects.get(pk=run.pk).started_at + dt.timedelta(seconds=25)
        )
        return summary_of(run.pk)

    found = await sync_to_async(summary)()
    # 0.6 + 0.5 + 0 (never below) + 0.5 for the items, 0.25 for the webhook step.
    assert found["sequential_seconds"] == pytest.approx(0.6 + 0.5 + 0.0 + 0.5 + 0.25)
    assert found["waited_seconds"] == pytest.approx(20.0 + 3.0 + 10.0 + 0.0 + 1.0)
    assert found["items_measured"] == 4
    assert found["speedup"] == pytest.approx(1.85 / 25)
    await sync_to_async(connections.close_all)()
