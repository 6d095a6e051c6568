"""The schedule trigger block: its checks name the field, its output is the tick and the
fixed input, and a workflow has one trigger."""

from __future__ import annotations

from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.limits import GraphLimits
from engine.core.validation import validate
from tests.engine.core.graphkit import block, graph, run_graph


def problems(
    *blocks: dict[str, Any], edges: list[tuple[str, str]] | None = None, **limits: Any
) -> set[tuple[str, str, str]]:
    result = validate(
        parse_graph(graph(list(blocks), edges or [])), REGISTRY, [], GraphLimits(**limits)
    )
    return {(e.block_name or "", e.field, e.message) for e in result.errors}


def schedule(**config: Any) -> dict[str, Any]:
    return block("nightly", "schedule", **config)


def test_a_valid_schedule_passes() -> None:
    assert (
        problems(schedule(cron="0 2 * * *", timezone="Europe/Paris", input={"days": 30})) == set()
    )


@pytest.mark.parametrize(
    ("config", "field", "says"),
    [
        ({"cron": "0 25 * * *"}, "cron", "not a cron expression"),
        ({"cron": "0 2 * * *", "timezone": "Nowhere/City"}, "timezone", "unknown time zone"),
        ({"cron": "*/5 * * * * *"}, "cron", "fires every 5 s; the shortest interval is 60 s"),
        ({}, "cron", "'cron' is a required property"),
    ],
)
def test_each_problem_names_the_field(config: dict[str, Any], field: str, says: str) -> None:
    found = problems(schedule(**config))
    assert any(f == field and says in m for _, f, m in found), found


def test_the_interval_limit_is_a_setting() -> None:
    assert problems(schedule(cron="*/5 * * * * *"), min_schedule_seconds=5) == set()


def test_one_trigger_per_workflow_with_no_inputs() -> None:
    hook = block("hook", "webhook")
    both = problems(schedule(cron="0 2 * * *"), hook)
    assert (
        "nightly",
        "trigger",
        "a workflow has one trigger: a webhook or a schedule, not both",
    ) in both
    feeder = block("feeder", "transform", input="x", expression="@")
    fed = problems(schedule(cron="0 2 * * *"), feeder, edges=[("feeder", "nightly")])
    assert ("nightly", "edges", "a trigger cannot have inputs") in fed


async def test_its_output_is_the_tick_and_the_fixed_input() -> None:
    flow = graph(
        [
            schedule(cron="0 2 * * *", input={"days": 30}),
            block("step", "transform", input="<nightly.input.days>", expression="@"),
        ],
        [("nightly", "step")],
    )
    outcome, _ = await run_graph(flow, {"scheduled_for": "2026-12-03T02:00:00+00:00"})
    assert outcome.outputs["nightly"] == {
        "scheduled_for": "2026-12-03T02:00:00+00:00",
        "input": {"days": 30},
    }
    assert outcome.outputs["step"] == {"result": 30}
