"""A block's `run_if`: a branch after a loop that runs only when items failed (failures as
data), skipped whole otherwise (engine/core/executor.py)."""

from __future__ import annotations

from engine.blocks import REGISTRY
from engine.core.executor import is_skipped_output
from engine.core.graph import parse_graph
from engine.core.validation import validate
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"
FAILED_LIST = (
    "join('\n', failed[*].join('', [to_string(item.domain), ' at ', block || 'the loop', "
    "': ', error]))"
)


def notify_failures(run_if: str = "<loop.failed>") -> dict:
    return graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                aggregations={"failed_list": FAILED_LIST},
            ),
            block("fetch", "http", "loop", url=LOOKUP, headers={"Authorization": "Bearer k"}),
            block("done", "slack", channel="#c", text="Done: <loop.succeeded> of <loop.count>"),
            block(
                "failures",
                "slack",
                channel="#c",
                text="Failed: <loop.failed_list>",
                run_if=run_if,
            ),
            block("after", "transform", input={"ts": "<failures.ts>"}, expression="ts"),
        ],
        [("webhook", "loop"), ("loop", "done"), ("loop", "failures"), ("failures", "after")],
    )


def items(n: int) -> dict:
    return {"items": [{"domain": f"d{i}.example"} for i in range(n)]}


def slack_texts(sim: RunningSimulator) -> list[str]:
    return [c["text"] for c in sim.control.stats()["received"] if c["endpoint"] == "slack"]


async def test_without_failures_the_branch_is_skipped_whole(sim: RunningSimulator) -> None:
    outcome, rec = await run_graph(notify_failures(), items(5), sim=sim)
    assert outcome.status == "succeeded"
    assert slack_texts(sim) == ["Done: 5 of 5"]
    failures, after = outcome.outputs["failures"], outcome.outputs["after"]
    assert is_skipped_output(failures) and failures["reason"] == (
        "skipped: run_if <loop.failed> is empty"
    )
    assert after == {"skipped": True, "reason": "skipped: failures was skipped"}
    finished = {e.data["block"]: e.data for e in rec.of("step.finished")}
    assert finished["failures"]["output"] == failures and finished["failures"]["usage"] == []


async def test_with_failures_the_branch_lists_each_failed_item_and_its_reason(
    sim: RunningSimulator,
) -> None:
    sim.control.configure(
        failures=[
            {"endpoint": "clearbit", "match": {"domain": d}, "status": 404}
            for d in ("d1.example", "d3.example")
        ]
    )
    outcome, _ = await run_graph(notify_failures(), items(5), sim=sim)
    assert outcome.status == "partially_succeeded"
    done, failed = slack_texts(sim)
    assert done == "Done: 3 of 5"
    lines = failed.removeprefix("Failed: ").split("\n")
    assert [line.split(" at ")[0] for line in lines] == ["d1.example", "d3.example"]
    assert all(" at fetch: " in line and "returned 404" in line for line in lines)
    assert isinstance(outcome.outputs["after"]["result"], str)  # the branch went on


async def test_a_count_of_zero_is_empty_and_a_missing_value_skips(sim: RunningSimulator) -> None:
    outcome, _ = await run_graph(notify_failures("<loop.succeeded>"), items(0), sim=sim)
    assert is_skipped_output(outcome.outputs["failures"])
    outcome, _ = await run_graph(
        notify_failures("<webhook.body.notify>"), {**items(1), "notify": True}, sim=sim
    )
    assert not is_skipped_output(outcome.outputs["failures"])
    outcome, _ = await run_graph(notify_failures("<webhook.body.notify>"), items(1), sim=sim)
    assert is_skipped_output(outcome.outputs["failures"])


def test_run_if_is_one_reference_checked_like_any_other() -> None:
    assert not validate(parse_graph(notify_failures()), REGISTRY).errors
    for bad, says in (
        ("failed", "run_if must be one reference"),
        ("<loop.failed> and more", "run_if must be one reference"),
        ("<loop.nope>", "<loop.nope>"),
        ("<nobody>", "no block or variable named 'nobody'"),
    ):
        errors = validate(parse_graph(notify_failures(bad)), REGISTRY).errors
        assert [(e.field, says in e.message) for e in errors] == [("run_if", True)], errors
