"""Waves (the loop's `batch_size`): a batch starts only once the previous one has ended."""

from __future__ import annotations

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"
ENDS = ("item.finished", "item.failed")


def wave_loop(**loop_config: object) -> dict:
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", **loop_config),
            block("fetch", "http", "loop", url=LOOKUP, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )


def items(n: int) -> dict:
    return {"items": [{"domain": f"d{i}.example"} for i in range(n)]}


def fail(domain: str) -> dict:
    return {"endpoint": "clearbit", "match": {"domain": domain}, "status": 404}


def wave_bounds(rec: Recorder, batch_size: int) -> list[tuple[int, int, int]]:
    """Per batch: (first start seq, last start seq, last end seq), batches by index."""
    out = []
    for wave in sorted({e.data["index"] // batch_size for e in rec.of("item.started")}):
        starts = [e.seq for e in rec.of("item.started") if e.data["index"] // batch_size == wave]
        ends = [
            e.seq for e in rec.events if e.type in ENDS and e.data["index"] // batch_size == wave
        ]
        out.append((min(starts), max(starts), max(ends)))
    return out


async def test_no_item_of_a_batch_starts_before_the_previous_batch_ended(
    sim: RunningSimulator,
) -> None:
    # Uneven latencies, so a sliding window would start batch k+1's items early; a failed
    # item in three batches must not stop the next one.
    sim.control.configure(
        latency_ms=5,
        jitter_ms=[0, 40],
        failures=[fail("d3.example"), fail("d27.example"), fail("d49.example")],
    )
    rec = Recorder()
    g = wave_loop(max_concurrent=4, batch_size=10)
    outcome, _ = await run_graph(g, items(50), sim=sim, recorder=rec)
    loop = outcome.outputs["loop"]
    assert outcome.status == "partially_succeeded"
    assert loop["succeeded"] == 47
    assert [f["index"] for f in loop["failed"]] == [3, 27, 49]
    assert sorted(e.data["index"] for e in rec.of("item.started")) == list(range(50))

    bounds = wave_bounds(rec, 10)
    assert len(bounds) == 5
    for (_, _, ended), (next_start, _, _) in zip(bounds, bounds[1:], strict=False):
        assert next_start > ended, bounds
    # The same by the clock the rows keep: every start of batch k+1 at or after every end
    # of batch k.
    for k in range(4):
        last_end = max(e.at for e in rec.events if e.type in ENDS and e.data["index"] // 10 == k)
        first_next = min(e.at for e in rec.of("item.started") if e.data["index"] // 10 == k + 1)
        assert first_next >= last_end
    batches = rec.of("loop.batch")
    assert [(e.data["batch"], e.data["batches"], e.data["size"]) for e in batches] == [
        (n, 5, 10) for n in range(1, 6)
    ]
    # Each batch runs on the sliding window of max_concurrent inside it.
    assert max(e.data["running"] for e in rec.of("progress")) <= 4


async def test_a_batch_bounds_the_items_in_flight_below_the_cap(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=20)
    outcome, rec = await run_graph(wave_loop(max_concurrent=20, batch_size=6), items(15), sim=sim)
    assert outcome.status == "succeeded"
    assert sim.control.stats()["peak_in_flight"]["clearbit"] <= 6
    assert [e.data["size"] for e in rec.of("loop.batch")] == [6, 6, 3]


async def test_without_batch_size_the_window_slides_across_the_whole_list(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(latency_ms=5, jitter_ms=[0, 40])
    outcome, rec = await run_graph(wave_loop(max_concurrent=4), items(20), sim=sim)
    assert outcome.status == "succeeded"
    assert not rec.of("loop.batch")


async def test_failed_items_retried_after_the_batch_run_in_waves_too(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(failures=[fail(f"d{i}.example") for i in (1, 2, 3)])
    g = wave_loop(max_concurrent=4, batch_size=2, retry_failed=1)
    outcome, rec = await run_graph(g, items(6), sim=sim)
    assert outcome.outputs["loop"]["succeeded"] == 3
    # 3 batches of 2, then the 3 failed items again in 2 batches.
    assert [e.data["batches"] for e in rec.of("loop.batch")] == [3, 3, 3, 2, 2]


def test_a_bad_batch_size_is_a_validation_error_naming_block_and_field() -> None:
    for bad, says in ((0, "minimum of 1"), ("ten", "not of type 'integer'"), (10**6, "maximum")):
        result = validate(parse_graph(wave_loop(batch_size=bad)), REGISTRY)
        issues = [(i.as_dict()["block"], i.field, i.message) for i in result.errors]
        assert len(issues) == 1 and issues[0][:2] == ("loop", "batch_size"), issues
        assert says in issues[0][2]
    assert not validate(parse_graph(wave_loop(batch_size=10)), REGISTRY).errors
