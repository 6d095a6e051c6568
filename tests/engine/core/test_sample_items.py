"""An estimate's run (RunOptions.sample_items): each top-level loop runs its first items."""

from __future__ import annotations

from engine.core.executor import RunOptions
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph


def nested() -> dict:
    return graph(
        [
            block("webhook", "webhook"),
            block("outer", "loop", items="<webhook.body.groups>", max_concurrent=3),
            block("inner", "loop", "outer", items="<item.members>", variable="m"),
            block("echo", "transform", "inner", input={"m": "<m>"}, expression="m"),
        ],
        [("webhook", "outer")],
    )


async def test_a_top_level_loop_runs_its_first_items_and_inner_loops_run_whole(
    sim: RunningSimulator,
) -> None:
    body = {"groups": [{"members": list(range(4))} for _ in range(10)]}
    outcome, rec = await run_graph(nested(), body, sim=sim, options=RunOptions(sample_items=3))
    assert outcome.status == "succeeded"
    outer = outcome.outputs["outer"]
    assert (outer["count"], outer["succeeded"]) == (10, 3)
    started = rec.of("item.started", loop="outer")
    assert sorted(e.data["index"] for e in started) == [0, 1, 2]
    assert len(rec.of("item.finished", loop="inner")) == 12  # every member of each sampled group
    [skipped] = rec.of("items.not_started")
    assert skipped.data["indexes"] == list(range(3, 10))
    assert skipped.data["error"] == "not started: an estimate runs the first 3 items only"
