"""The slot contract in the core (engine/core/slots.py): the loop's per-item hook and the
provider hook, with the in-process holder (`LocalSlots`); the PostgreSQL holder shared by
processes is tested in tests/engine/test_slots.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.events import EventBus
from engine.core.executor import Executor, RunOutcome
from engine.core.graph import parse_graph
from engine.core.memo import DoneItem, ItemFailure, Memo, StoredStep
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.provider_settings import KeyLimits, ProviderSettings
from engine.core.providers import CURRENT_STEP, ProviderRegistry, StepTag
from engine.core.services import Services
from engine.core.slots import LocalSlots, Notice, item_slot, loop_key
from simulator.testing import RunningSimulator, peak_concurrency
from tests.engine.core.graphkit import PROVIDER_HOSTS, Recorder, block, graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"


class RecordingSlots(LocalSlots):
    """LocalSlots that also remembers every key it was asked for, with its cap."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: dict[str, int] = {}
        self.holds = 0

    def hold(self, key: str, cap: int, notice: Notice | None = None) -> Any:
        self.asked[key] = cap
        self.holds += 1
        return super().hold(key, cap, notice)


def lookups(cap: int) -> dict[str, Any]:
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=cap),
            block("fetch", "http", "loop", url=LOOKUP, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )


async def run_with(
    graph_json: dict[str, Any],
    body: Any,
    sim: RunningSimulator,
    slots: Any,
    run_id: str,
    recorder: Recorder | None = None,
    memo: Memo | None = None,
) -> RunOutcome:
    services = Services(
        outbound=OutboundFactory(
            OutboundConfig(host_overrides={h: sim.base_url for h in PROVIDER_HOSTS})
        ),
        slots=slots,
        run_id=run_id,
    )
    engine = Executor(
        parse_graph(graph_json),
        REGISTRY,
        bus=EventBus(recorder or Recorder()),
        services=services,
        memo=memo,
    )
    try:
        return await engine.run(body)
    finally:
        await services.aclose()


def domains(n: int, prefix: str = "d") -> dict[str, Any]:
    return {"items": [{"domain": f"{prefix}{i}.io"} for i in range(n)]}


async def test_two_executions_of_one_run_share_the_loop_cap(sim: RunningSimulator) -> None:
    """Two executors of one run (a chunked loop's two workers) each run their own window of
    3, holding slots of the same key: the upstream never sees more than the loop's cap."""
    sim.control.configure(latency_ms=30)
    slots = RecordingSlots()
    first, second = await asyncio.gather(
        run_with(lookups(3), domains(12, "a"), sim, slots, "run-1"),
        run_with(lookups(3), domains(12, "b"), sim, slots, "run-1"),
    )
    assert first.status == second.status == "succeeded"
    key = loop_key("run-1", "loop", "")
    assert slots.asked == {key: 3}
    assert slots.peaks[key] == 3
    assert slots.held(key) == 0
    peak, _, _ = peak_concurrency(sim.control.stats()["received"])
    assert peak == 3


async def test_two_runs_keep_a_cap_each(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=30)
    slots = RecordingSlots()
    await asyncio.gather(
        run_with(lookups(3), domains(9, "a"), sim, slots, "run-a"),
        run_with(lookups(3), domains(9, "b"), sim, slots, "run-b"),
    )
    assert set(slots.asked) == {loop_key("run-a", "loop", ""), loop_key("run-b", "loop", "")}
    peak, _, _ = peak_concurrency(sim.control.stats()["received"])
    assert peak == 6  # the keys are per run: each run has its whole cap


async def test_nested_loops_hold_a_key_per_enclosing_item_and_finish(
    sim: RunningSimulator,
) -> None:
    """An outer item holds its own slot while its inner loop's items wait for slots of the
    inner key of that outer item: caps of 1 everywhere cannot deadlock."""
    sim.control.configure(latency_ms=5)
    nested = graph(
        [
            block("webhook", "webhook"),
            block("outer", "loop", items="<webhook.body.groups>", max_concurrent=1),
            block("inner", "loop", "outer", items="<item.members>", max_concurrent=1),
            block("fetch", "http", "inner", url=LOOKUP, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "outer")],
    )
    body = {
        "groups": [{"members": [{"domain": f"g{g}m{m}.io"} for m in range(3)]} for g in range(3)]
    }
    slots = RecordingSlots()
    outcome = await asyncio.wait_for(run_with(nested, body, sim, slots, "run-n"), 30)
    assert outcome.status == "succeeded"
    assert slots.asked == {
        loop_key("run-n", "outer", ""): 1,
        **{loop_key("run-n", "inner", f"outer[{g}]"): 1 for g in range(3)},
    }
    assert all(peak == 1 for peak in slots.peaks.values())


async def test_items_that_ended_before_hold_no_slot(sim: RunningSimulator) -> None:
    """A resumed run (or a distributed loop's composition) reuses what its settled items
    did: only the item that still has work holds a slot."""
    memo = Memo(
        steps={("loop[0]", "fetch"): StoredStep(output={"status": 200, "body": {}})},
        done={"loop[0]": DoneItem()},
        failures={"loop[1]": ItemFailure(block="fetch", error="it failed before")},
    )
    slots = RecordingSlots()
    outcome = await run_with(lookups(3), domains(3), sim, slots, "run-r", memo=memo)
    assert outcome.status == "partially_succeeded"
    assert slots.holds == 1
    assert len(sim.control.stats()["received"]) == 1


async def test_without_slots_or_a_run_id_an_item_holds_nothing() -> None:
    """Inline (no slot holder), or a caller that did not say which run: the loop's window
    is the cap, and no slot is asked for."""
    slots = RecordingSlots()
    for services in (Services(outbound=None), Services(outbound=None, slots=slots)):  # type: ignore[arg-type]
        async with item_slot(services, "loop", "", 3) as held:
            assert held is None
    assert slots.asked == {}


def tagged(recorder: Recorder) -> StepTag:
    return StepTag(item="loop[0]", block="fetch", name="fetch", bus=EventBus(recorder))


async def test_a_call_waits_for_its_cluster_slot_and_says_so() -> None:
    """The process's registry lets the call through (its cap is 2 here), but the cluster's 2
    slots of the key are held elsewhere: the step waits, visibly, and goes on once one is
    given back."""
    registry = ProviderRegistry(
        ProviderSettings(limits={"api.clearbit.com": KeyLimits(concurrency=2, start=1.0)})
    )
    cluster = LocalSlots()
    registry.cluster = cluster
    elsewhere = [cluster.hold("provider:api.clearbit.com", 2) for _ in range(2)]
    for hold in elsewhere:
        await hold.__aenter__()
    recorder = Recorder()
    CURRENT_STEP.set(tagged(recorder))

    async def call() -> None:
        async with registry.call("api.clearbit.com") as passage:
            passage.observe(200)

    task = asyncio.create_task(call())
    await asyncio.sleep(0.05)
    assert not task.done()
    [waiting] = recorder.of("step.waiting")
    assert waiting.data["reason"] == "cluster"
    assert waiting.data["provider"] == "api.clearbit.com"
    assert waiting.data["message"].startswith("waiting for api.clearbit.com: cluster")
    assert registry.state("api.clearbit.com").in_flight == 1  # the process's permit is held
    await elsewhere[0].__aexit__(None, None, None)
    await asyncio.wait_for(task, 5)
    assert len(recorder.of("step.waited", provider="api.clearbit.com")) == 1
    assert registry.state("api.clearbit.com").in_flight == 0
    assert cluster.held("provider:api.clearbit.com") == 1  # only the one held elsewhere
    await elsewhere[1].__aexit__(None, None, None)


async def test_a_call_cancelled_while_waiting_for_its_cluster_slot_gives_back_its_permit() -> None:
    registry = ProviderRegistry(
        ProviderSettings(limits={"api.clearbit.com": KeyLimits(concurrency=1, start=1.0)})
    )
    cluster = LocalSlots()
    registry.cluster = cluster
    elsewhere = cluster.hold("provider:api.clearbit.com", 1)
    await elsewhere.__aenter__()

    async def call() -> None:
        async with registry.call("api.clearbit.com"):
            pytest.fail("let through while the only slot is held elsewhere")

    task = asyncio.create_task(call())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert registry.state("api.clearbit.com").in_flight == 0
    await elsewhere.__aexit__(None, None, None)
    assert cluster.held("provider:api.clearbit.com") == 0


async def test_keys_without_a_cap_hold_no_cluster_slot() -> None:
    registry = ProviderRegistry(ProviderSettings())
    slots = RecordingSlots()
    registry.cluster = slots
    async with registry.call("api.linkedin.com") as passage:
        passage.observe(200)
    assert slots.asked == {}


async def test_local_slots_serve_waiters_in_order_and_forget_cancelled_ones() -> None:
    slots = LocalSlots()
    order: list[str] = []
    first = slots.hold("k", 1)
    await first.__aenter__()

    async def wait(name: str) -> None:
        async with slots.hold("k", 1):
            order.append(name)

    a = asyncio.create_task(wait("a"))
    await asyncio.sleep(0)
    b = asyncio.create_task(wait("b"))
    await asyncio.sleep(0)
    c = asyncio.create_task(wait("c"))
    await asyncio.sleep(0)
    b.cancel()
    await first.__aexit__(None, None, None)
    await asyncio.gather(a, c)
    assert b.cancelled()
    assert order == ["a", "c"]
    assert slots.held("k") == 0
