"""The brief's resilience patterns on the loop: retry failed items after the batch,
a circuit breaker, adaptive concurrency."""

from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"


def lookup_loop(**loop_config: object) -> dict:
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


def fail(domain: str, times: int | None = None) -> dict:
    return {"endpoint": "clearbit", "match": {"domain": domain}, "status": 404, "times": times}


async def test_failed_items_are_retried_after_the_batch(sim: RunningSimulator) -> None:
    sim.control.configure(failures=[fail("d3.example", times=1), fail("d5.example")])
    g = lookup_loop(retry_failed=2, aggregations={"order": "results[].index"})
    outcome, rec = await run_graph(g, items(8), sim=sim)
    loop = outcome.outputs["loop"]
    assert outcome.status == "partially_succeeded"
    assert loop["succeeded"] == 7 and [f["index"] for f in loop["failed"]] == [5]
    assert loop["order"] == [0, 1, 2, 3, 4, 6, 7]
    starts = [e.data["index"] for e in rec.of("item.started")]
    assert starts.count(3) == 2 and starts.count(5) == 3 and starts.count(0) == 1


async def test_circuit_breaker_stops_starting_items_and_says_why(sim: RunningSimulator) -> None:
    sim.control.configure(failures=[fail(f"d{i}.example") for i in (0, 2, 4, 6)])
    config = {"max_concurrent": 1, "circuit_breaker": {"failure_rate": 0.2, "min_items": 5}}
    outcome, rec = await run_graph(lookup_loop(**config), items(20), sim=sim)
    loop = outcome.outputs["loop"]
    assert loop["circuit_open"] is True
    assert len(rec.of("item.started")) == 5  # 3 of 5 failed (60% > 20%): nothing more starts
    assert loop["succeeded"] == 2 and len(loop["failed"]) == 18
    skipped = [f for f in loop["failed"] if f["block"] is None]
    assert [f["index"] for f in skipped] == list(range(5, 20))
    assert "circuit breaker opened after 3 of 5 items failed (60% > 20%)" in skipped[0]["error"]
    assert {e.data["index"] for e in rec.of("item.failed")} >= set(range(5, 20))


async def test_adaptive_concurrency_grows_on_success_and_falls_back_on_failure(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(latency_ms=30, failures=[fail("d30.example")])
    config = {"max_concurrent": 8, "adaptive": {"start": 2, "min": 1, "window": 4}}
    outcome, rec = await run_graph(lookup_loop(**config), items(60), sim=sim)
    assert outcome.status == "partially_succeeded"
    limits = [e.data["limit"] for e in rec.of("loop.concurrency")]
    assert max(limits) == 8 and 1 in limits
    assert limits.index(8) < limits.index(1)  # it grew to the cap, then the failure cut it back
    assert sim.control.stats()["peak_in_flight"]["clearbit"] == 8


async def test_without_adaptive_the_cap_is_fixed(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=20)
    outcome, rec = await run_graph(lookup_loop(max_concurrent=4), items(12), sim=sim)
    assert outcome.status == "succeeded" and not rec.of("loop.concurrency")
    assert sim.control.stats()["peak_in_flight"]["clearbit"] == 4


def test_adaptive_settings_are_validated() -> None:
    from engine.blocks import REGISTRY
    from engine.core.graph import parse_graph
    from engine.core.validation import validate

    bad = lookup_loop(max_concurrent=4, adaptive={"start": 6, "min": 2})
    errors = validate(parse_graph(bad), REGISTRY).errors
    assert [(e.block_name, e.field) for e in errors] == [("loop", "adaptive")]
    assert "min ≤ start ≤ max_concurrent (2 ≤ 6 ≤ 4)" in errors[0].message
    unknown = lookup_loop(circuit_breaker={"failure_rate": 2})
    assert any(
        e.field == "circuit_breaker.failure_rate"
        for e in validate(parse_graph(unknown), REGISTRY).errors
    )
