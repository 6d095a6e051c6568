"""A loop handed to a `Distributor` (engine/core/distribution.py) gives the same output as
the loop run in place: here the chunks run in this process, each on an executor of its own
that starts from the coordinator's top-level outputs, and what they record comes back as
the memo the loop composes from."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core import loop as loop_module
from engine.core.distribution import ChunkSpan, GateLane, RankedGate
from engine.core.events import Event, EventBus
from engine.core.executor import Executor, StepFailed
from engine.core.graph import Block, parse_graph
from engine.core.memo import DoneItem, ItemFailure, Memo, StoredStep
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.services import Services
from tests.engine.core.graphkit import Recorder, block, graph, run_graph


def services() -> Services:
    return Services(outbound=OutboundFactory(OutboundConfig()))


class InProcessDistributor:
    """Runs a loop's chunks one after another here, as workers would run them."""

    def __init__(self, graph_json: dict[str, Any], body: Any, size: int) -> None:
        self.graph_json = graph_json
        self.body = body
        self.size = size
        self.top: dict[str, Any] = {}  # the coordinator's top-level outputs, by block id
        self.chunks: list[tuple[int, ...]] = []
        self.chunk_events: list[Event] = []
        self.memo = Memo()  # what the chunks stored, as their rows would say it
        self.slices: list[int] = []  # how many items each read of the stored steps asked for
        self.with_outputs: list[bool] = []  # whether each read asked for the steps' outputs

    def heard(self, event: Event) -> None:
        if event.type == "step.finished" and not event.data.get("item"):
            self.top[event.data["block"]] = event.data["output"]

    def wants(self, block: Block, total: int) -> bool:
        return total > self.size

    async def fan_out(
        self, block: Block, items: list[Any], order: list[int], progress: Any
    ) -> None:
        memo = self.memo
        for start in range(0, len(order), self.size):
            span = ChunkSpan(block.id, tuple(order[start : start + self.size]))
            self.chunks.append(span.indexes)
            recorder = Recorder()
            steps = {("", b): StoredStep(out) for b, out in self.top.items()}
            chunk = Executor(
                parse_graph(self.graph_json),
                REGISTRY,
                bus=EventBus(recorder),
                services=services(),
                memo=Memo(steps),
            )
            await chunk.run_chunk(span, self.body)
            self.chunk_events += recorder.events
            for event in recorder.events:
                data = event.data
                if event.type == "step.finished" and data.get("item"):
                    memo.steps[(data["item"], data["block"])] = StoredStep(data["output"])
                elif event.type == "item.failed":
                    memo.failures[data["item"]] = ItemFailure(data.get("block"), data["error"])
                elif event.type == "item.finished":
                    memo.done[data["item"]] = DoneItem()
            progress({"succeeded": len(memo.done), "failed": len(memo.failures)})

    async def stored(
        self, block: Block, indexes: Sequence[int] | None, *, outputs: bool = True
    ) -> Memo:
        if indexes is None:
            self.slices.append(-1)
            return Memo(dict(self.memo.steps), dict(self.memo.failures), dict(self.memo.done))
        self.slices.append(len(indexes))
        self.with_outputs.append(outputs)
        keys = {f"{block.name}[{i}]" for i in indexes}
        return Memo(
            {
                k: v if outputs else StoredStep(None)
                for k, v in self.memo.steps.items()
                if k[0] in keys
            },
            {k: v for k, v in self.memo.failures.items() if k in keys},
        )


def doubling_loop(**loop_config: Any) -> dict[str, Any]:
    return graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                variable="row",
                max_concurrent=4,
                aggregations={
                    "total": "sum(results[].outputs.double.result)",
                    "n": "length(failed)",
                },
                **loop_config,
            ),
            block("double", "transform", "loop", input={"v": "<row.value>"}, expression="v"),
            block("after", "transform", input={"t": "<loop.total>"}, expression="t"),
        ],
        [("webhook", "loop"), ("loop", "after")],
    )


def body(n: int) -> dict[str, Any]:
    # Every seventh item lacks its value: it fails alone, with its reason.
    return {"items": [{"id": i} if i % 7 == 3 else {"id": i, "value": i} for i in range(n)]}


async def distributed(graph_json: dict[str, Any], payload: Any, size: int) -> tuple[Any, Any]:
    distributor = InProcessDistributor(graph_json, payload, size)
    recorder = Recorder()

    def sink(event: Event) -> None:
        recorder(event)
        distributor.heard(event)

    executor = Executor(
        parse_graph(graph_json),
        REGISTRY,
        bus=EventBus(sink),
        services=services(),
        distributor=distributor,
    )
    outcome = await executor.run(payload)
    return outcome, (distributor, recorder)


async def test_a_distributed_loop_composes_what_the_loop_in_place_computes() -> None:
    g = doubling_loop()
    local, _ = await run_graph(g, body(50))
    outcome, (distributor, recorder) = await distributed(g, body(50), 8)
    assert outcome.status == local.status == "partially_succeeded"
    assert outcome.outputs == local.outputs
    assert outcome.failed_items == local.failed_items == 7
    assert len(distributor.chunks) == 7  # 50 items in chunks of 8
    assert sorted(i for c in distributor.chunks for i in c) == list(range(50))
    # Every item ran once, in its chunk; the coordinator recorded none of them again.
    assert len([e for e in distributor.chunk_events if e.type == "item.started"]) == 50
    assert not recorder.of("item.started")
    assert [e.data["succeeded"] for e in recorder.of("progress")][-1] == 43


async def test_a_big_loop_composes_a_slice_of_items_at_a_time(monkeypatch: Any) -> None:
    """The coordinator reads its items' stored steps COMPOSE_SLICE items at a time (its
    memory holds one slice's outputs, whatever the batch), and composes the same output."""
    monkeypatch.setattr(loop_module, "COMPOSE_SLICE", 16)
    g = doubling_loop()
    local, _ = await run_graph(g, body(70))
    outcome, (distributor, recorder) = await distributed(g, body(70), 8)
    assert outcome.outputs == local.outputs and outcome.failed_items == local.failed_items
    assert distributor.slices == [16, 16, 16, 16, 6]
    assert distributor.with_outputs == [True] * 5  # its aggregation reads them
    assert not recorder.of("item.started")


async def test_a_loop_whose_output_nobody_reads_composes_without_reading_outputs() -> None:
    """Its items' steps are checked as stored, their outputs are neither read nor decoded;
    its counts and failures are the loop in place's."""
    g = doubling_loop()
    g["blocks"] = [b for b in g["blocks"] if b["id"] != "after"]
    g["edges"] = [e for e in g["edges"] if "after" not in e.values()]
    g["blocks"][1]["config"].pop("aggregations")
    local, _ = await run_graph(g, body(30))
    outcome, (distributor, recorder) = await distributed(g, body(30), 8)
    assert distributor.with_outputs == [False]
    assert outcome.status == local.status == "partially_succeeded"
    assert outcome.failed_items == local.failed_items == 4
    assert outcome.outputs["loop"]["failed"] == local.outputs["loop"]["failed"]
    assert not recorder.of("item.started")


async def test_a_slice_missing_a_step_falls_back_to_reusing_every_item() -> None:
    """An item whose steps are not all stored (a masked output is never reused) cannot be
    composed: nothing composed stays, the loop reuses every item's stored steps and runs
    what is missing, and the output is the same."""
    g = doubling_loop()
    local, _ = await run_graph(g, body(40))
    distributor = InProcessDistributor(g, body(40), 8)
    original = distributor.stored

    async def stored(block: Block, indexes: Sequence[int] | None, *, outputs: bool = True) -> Memo:
        memo = await original(block, indexes, outputs=outputs)
        memo.steps.pop(("loop[33]", "double"), None)  # item 33's step was not stored
        return memo

    distributor.stored = stored  # type: ignore[method-assign]
    recorder = Recorder()

    def sink(event: Event) -> None:
        recorder(event)
        distributor.heard(event)

    executor = Executor(
        parse_graph(g), REGISTRY, bus=EventBus(sink), services=services(), distributor=distributor
    )
    outcome = await executor.run(body(40))
    assert outcome.outputs == local.outputs and outcome.failed_items == local.failed_items == 6
    ran = [e for e in recorder.of("step.finished") if not e.data.get("reused")]
    assert [e.data["item"] for e in ran if e.data.get("item")] == ["loop[33]"]


async def test_a_loop_with_an_inner_loop_reuses_its_items_steps_instead() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block("outer", "loop", items="<webhook.body.groups>", variable="group"),
            block("inner", "loop", "outer", items="<group.values>", variable="v"),
            block("double", "transform", "inner", input={"v": "<v>"}, expression="v"),
        ],
        [("webhook", "outer")],
    )
    payload = {"groups": [{"values": list(range(i % 3 + 1))} for i in range(12)]}
    local, _ = await run_graph(g, payload)
    outcome, (distributor, recorder) = await distributed(g, payload, 5)
    assert outcome.status == local.status == "succeeded"
    assert outcome.outputs == local.outputs
    assert len(distributor.chunks) == 3
    # The inner loops ran in the chunks; the coordinator only reused their items' steps.
    transforms = [e for e in recorder.of("step.finished") if e.data["name"] == "double"]
    assert transforms and all(e.data.get("reused") for e in transforms)


async def test_loops_deciding_on_the_batch_as_it_goes_stay_on_the_coordinator() -> None:
    for setting in ({"fail_fast": True}, {"adaptive": {"start": 2}}, {"execution": "sequential"}):
        g = doubling_loop(**setting)
        _, (distributor, _) = await distributed(g, body(30), 8)
        assert distributor.chunks == [], setting


async def test_small_loops_and_loops_inside_items_are_not_distributed() -> None:
    g = doubling_loop()
    outcome, (distributor, _) = await distributed(g, body(8), 8)
    assert outcome.outputs["loop"]["count"] == 8 and distributor.chunks == []


async def test_a_chunk_without_the_outputs_it_starts_from_fails_clearly() -> None:
    g = doubling_loop()
    chunk = Executor(parse_graph(g), REGISTRY, bus=EventBus(Recorder()), services=services())
    try:
        await chunk.run_chunk(ChunkSpan("loop", (0, 1)), body(2))
    except StepFailed as failure:
        assert failure.block.name == "loop"
        assert "'webhook' has no stored output to start from" in failure.message
    else:
        raise AssertionError("a chunk ran with no stored outputs to start from")


async def test_a_worker_s_share_of_items_goes_to_its_oldest_chunk_first() -> None:
    """`RankedGate`: a freed place goes to the waiting item of the oldest lane (chunk),
    whatever the order they came in; within a lane, first come first served."""
    gate = RankedGate(2)
    old, new = gate.lane(), gate.lane()
    served: list[str] = []
    release: dict[str, asyncio.Event] = {}

    async def item(lane: GateLane, name: str) -> None:
        release[name] = asyncio.Event()
        async with lane:
            served.append(name)
            await release[name].wait()

    tasks = [asyncio.create_task(item(old, "old-0")), asyncio.create_task(item(old, "old-1"))]
    await asyncio.sleep(0)
    assert served == ["old-0", "old-1"] and gate.free == 0
    # The newer chunk's items come first, then more of the older one's.
    for name, lane in [("new-0", new), ("new-1", new), ("old-2", old), ("old-3", old)]:
        tasks.append(asyncio.create_task(item(lane, name)))
        await asyncio.sleep(0)
    for done in ["old-0", "old-1", "old-2", "old-3", "new-0"]:
        release[done].set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert served == ["old-0", "old-1", "old-2", "old-3", "new-0", "new-1"]
    release["new-1"].set()
    await asyncio.gather(*tasks)
    assert gate.free == 2


async def test_a_waiter_cancelled_as_it_is_let_in_hands_its_place_on() -> None:
    gate = RankedGate(1)
    lane = gate.lane()
    await gate.acquire(lane.rank)
    first = asyncio.create_task(gate.acquire(lane.rank))
    second = asyncio.create_task(gate.acquire(lane.rank))
    await asyncio.sleep(0)
    gate.release()  # `first` is let in ...
    first.cancel()  # ... and cancelled before it runs: the place goes to `second`
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert first.cancelled() and second.done()
    gate.release()
    assert gate.free == 1
    with pytest.raises(ValueError, match="at least one"):
        RankedGate(0)
