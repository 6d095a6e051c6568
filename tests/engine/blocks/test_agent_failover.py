"""Failover on the Agent block (issue 9 item 9): an ordered list of models with the same
response format; when the first answers 429, is paused by its breaker or has no budget
left, items go to the next, and each step's usage says which one answered."""

from __future__ import annotations

from typing import Any

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.provider_settings import BreakerPolicy, ProviderSettings
from engine.core.providers import registry_for_loop
from engine.core.validation import validate
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

PRIMARY, SECOND = "gpt-primary", "gpt-second"
FORMAT = {
    "type": "object",
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
}


def rating_loop(**agent: Any) -> dict[str, Any]:
    config = {
        "model": PRIMARY,
        "user_prompt": "Rate <item.domain> from 1 to 10.",
        "response_format": FORMAT,
        "failover": [{"model": SECOND}],
        **agent,
    }
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=5),
            block("rate", "agent", "loop", **config),
        ],
        [("webhook", "loop")],
    )


def leads(n: int) -> dict[str, Any]:
    return {"items": [{"domain": f"lead{i}.example"} for i in range(n)]}


def endpoint_of(step: Any) -> str:
    [usage] = step.data["usage"]
    return str(usage["endpoint"])


async def test_items_move_to_the_second_model_once_the_first_answers_429(
    sim: RunningSimulator,
) -> None:
    """The first model answers 429 from its 31st call on: the remaining items finish on
    the second, none fails, and the switch happens within 1 s."""
    sim.control.configure(
        latency_ms=10,
        failures=[{"endpoint": "openai", "match": {"model": PRIMARY}, "status": 429, "after": 30}],
    )
    registry_for_loop(ProviderSettings())
    outcome, recorder = await run_graph(rating_loop(), leads(100), sim=sim)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.failed_items == 0
    finished = recorder.of("step.finished", name="rate")
    assert len(finished) == 100
    by_endpoint = [endpoint_of(step) for step in finished]
    assert by_endpoint.count(f"api.openai.com/{PRIMARY}") == 30
    assert by_endpoint.count(f"api.openai.com/{SECOND}") == 70
    # Structured outputs come from whichever answered: the same response format.
    assert all(isinstance(step.data["output"]["score"], int) for step in finished)

    received = sorted(
        (r for r in sim.control.stats()["received"] if r["endpoint"] == "openai"),
        key=lambda r: r["start_seq"],
    )
    refused = [r for r in received if r["status"] == 429]
    second = [r for r in received if r["json"]["model"] == SECOND]
    assert second[0]["started"] - refused[0]["finished"] < 1.0  # the switch, within 1 s
    # Its breaker opened on the 429s, so later items went straight to the second instead of
    # each meeting a 429 first (70 would have).
    assert len(refused) <= 15
    # The run was never paused: its items moved on rather than wait for the first model.
    assert not recorder.of("provider.breaker")
    assert not [e for e in recorder.of("step.waiting") if e.data["reason"] == "breaker"]


async def test_a_paused_first_model_is_skipped_from_the_start(sim: RunningSimulator) -> None:
    """A breaker open in manual mode on the first model: every item uses the second."""
    sim.control.configure(
        failures=[{"endpoint": "openai", "match": {"model": PRIMARY}, "status": 503, "times": 4}]
    )
    policy = BreakerPolicy(mode="manual", min_calls=4, window=4, failure_rate=0.5)
    registry = registry_for_loop(ProviderSettings(breaker=policy))
    outcome, recorder = await run_graph(rating_loop(), leads(30), sim=sim)
    assert outcome.status == "succeeded" and outcome.failed_items == 0
    assert registry.breakers()[f"api.openai.com/{PRIMARY}"]["state"] == "open"
    used = [endpoint_of(step) for step in recorder.of("step.finished", name="rate")]
    assert used.count(f"api.openai.com/{SECOND}") >= 30 - 4
    primary_calls = [r for r in sim.control.stats()["received"] if r["json"]["model"] == PRIMARY]
    assert len(primary_calls) <= 5 + 4  # the failing ones and those already on their way
    registry.resume(f"api.openai.com/{PRIMARY}")


def test_failover_is_validated_naming_the_block_and_the_field() -> None:
    def errors(**agent: Any) -> list[tuple[str | None, str | None, str]]:
        result = validate(parse_graph(rating_loop(**agent)), REGISTRY)
        return [(e.block_name, e.field, e.message) for e in result.errors]

    assert errors() == []
    assert errors(failover=[{"model": PRIMARY}]) == [
        (
            "rate",
            "failover.0.model",
            f"'{PRIMARY}' is the block's own model: each model is tried once",
        )
    ]
    assert errors(failover=[{"model": SECOND}, {"model": SECOND}]) == [
        ("rate", "failover.1.model", f"'{SECOND}' is listed before: each model is tried once")
    ]
    missing = errors(failover=[{"api_key": "<env.OTHER_KEY>"}])
    assert [(b, f) for b, f, _ in missing] == [("rate", "failover.0")]
    assert "'model' is a required property" in missing[0][2]
