"""One block alone (engine/core/single_step.py): what its names stand for, and a real run of
it through the executor against the simulator (retries, timeouts, the SSRF guard)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.executor import RunOptions
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.retry import RetryPolicy
from engine.core.services import Services
from engine.core.single_step import (
    MissingInput,
    NotTestable,
    StepTest,
    input_names,
    run_step_test,
)
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import PROVIDER_HOSTS, block, graph

CLEARBIT = "https://api.clearbit.com/v2/companies/find?domain=<lead.domain>"
TEMPLATE_LIKE = graph(
    [
        block("hook", "webhook"),
        block("prep", "transform", input="<hook.body>", expression="leads"),
        block("each", "loop", items="<prep.result>", variable="lead"),
        block("ask", "agent", "each", user_prompt="<lead.name> #<loop.index> <prep.result>"),
        block(
            "company",
            "http",
            "each",
            url=CLEARBIT,
            headers={"Authorization": "Bearer <env.KEY>"},
        ),
        block("merge", "transform", "each", input=["<ask.content>", "<each.item>"], expression="@"),
        block("after", "transform", input="<each.count>", expression="@"),
    ],
    [("hook", "prep"), ("prep", "each"), ("ask", "merge"), ("each", "after")],
)


def services(sim: RunningSimulator | None = None) -> Services:
    overrides = {host: sim.base_url for host in PROVIDER_HOSTS} if sim else {}
    return Services(
        outbound=OutboundFactory(OutboundConfig(host_overrides=overrides)),
        openai_api_key="sk-test",
    )


async def tried(
    block_id: str,
    values: dict[str, Any],
    sim: RunningSimulator | None = None,
    *,
    env: dict[str, str] | None = None,
    within: float = 10,
    options: RunOptions | None = None,
    graph_json: dict[str, Any] = TEMPLATE_LIKE,
) -> StepTest:
    parsed = parse_graph(graph_json)
    held = services(sim)
    try:
        return await run_step_test(
            parsed,
            parsed.block(block_id),
            REGISTRY,
            services=held,
            env=env or {"KEY": "sekrit-key-123"},
            values=values,
            options=options,
            within=within,
        )
    finally:
        await held.aclose()


def test_names_stand_for_outputs_items_and_iterations() -> None:
    parsed = parse_graph(TEMPLATE_LIKE)
    ask = input_names(parsed, parsed.block("ask"), REGISTRY["agent"])
    assert [(n.name, n.kind, n.source and n.source.id) for n in ask] == [
        ("lead", "item", "each"),
        ("loop", "iteration", "each"),
        ("prep", "output", "prep"),  # upstream of the loop, reached from its body
    ]
    company = input_names(parsed, parsed.block("company"), REGISTRY["http"])
    assert [n.name for n in company] == ["lead"]  # <env.KEY> is the owner's, not an input
    merge = input_names(parsed, parsed.block("merge"), REGISTRY["transform"])
    assert [(n.name, n.kind) for n in merge] == [("ask", "output"), ("each", "iteration")]
    after = input_names(parsed, parsed.block("after"), REGISTRY["transform"])
    assert [(n.name, n.kind) for n in after] == [("each", "output")]
    # A name that is not upstream stands for nothing (a value given by hand still works).
    prep = input_names(parsed, parsed.block("prep"), REGISTRY["transform"])
    assert [(n.name, n.kind) for n in prep] == [("hook", "output")]
    lone = parse_graph(graph([block("t", "transform", input="<ghost.x>", expression="@")], []))
    [ghost] = input_names(lone, lone.block("t"), REGISTRY["transform"])
    assert ghost.kind == "unknown" and ghost.source is None


async def test_a_block_inside_a_loop_runs_alone_with_the_given_item(sim: RunningSimulator) -> None:
    sim.control.reset(record=True)
    values = {"lead": {"name": "Ada"}, "loop": {"index": 3, "item": {}}, "prep": {"result": ["x"]}}
    result = await tried("ask", values, sim)
    assert result.status == "succeeded", result
    assert result.attempts == 1 and result.error is None
    assert result.config["user_prompt"] == 'Ada #3 ["x"]'
    [call] = sim.control.stats()["received"]
    assert call["endpoint"] == "openai" and "Ada #3" in call["prompt"]
    assert result.usage and result.output["content"]


async def test_transient_failures_are_retried_by_the_one_policy(sim: RunningSimulator) -> None:
    sim.control.reset(
        failures=[{"endpoint": "clearbit", "status": 503, "times": 1, "retry_after": "0"}]
    )
    result = await tried("company", {"lead": {"domain": "acme.example"}}, sim)
    assert result.status == "succeeded", result
    assert result.attempts == 2
    assert [r["attempt"] for r in result.retries] == [1]
    assert "503" in result.retries[0]["error"]
    assert result.config["headers"] == {"Authorization": "Bearer [redacted]"}


async def test_a_failure_is_a_result_with_its_reason(sim: RunningSimulator) -> None:
    sim.control.reset(failures=[{"endpoint": "clearbit", "status": 404}])
    result = await tried("company", {"lead": {"domain": "acme.example"}}, sim)
    assert result.status == "failed" and result.output is None
    assert result.attempts == 1 and "404" in (result.error or "")


async def test_the_whole_test_is_bounded_by_its_timeout(sim: RunningSimulator) -> None:
    sim.control.reset()
    sim.control.configure(hold=[{"endpoint": "clearbit"}])
    try:
        result = await tried(
            "company",
            {"lead": {"domain": "acme.example"}},
            sim,
            within=0.3,
            options=RunOptions(retry=RetryPolicy(max_attempts=1)),
        )
    finally:
        sim.control.reset()
    assert result.status == "failed"
    assert result.error == "the test stopped after 0.3 s (KLYNTOS_BLOCK_TEST_TIMEOUT)"
    assert result.attempts == 1


async def test_the_ssrf_guard_applies_to_a_test() -> None:
    local = graph([block("peek", "http", url="http://127.0.0.1:9/<path>")], [])
    result = await tried("peek", {"path": "admin"}, graph_json=local)
    assert result.status == "failed"
    assert "refused" in (result.error or "") and "127.0.0.1" in (result.error or "")


async def test_missing_values_and_loops_are_refused_before_anything_runs() -> None:
    with pytest.raises(MissingInput) as missing:
        await tried("merge", {"ask": {"content": "c"}})
    assert missing.value.field == "input.1" and missing.value.reference.text == "<each.item>"
    assert str(missing.value).startswith("merge.input.1: <each.item>: no value for 'each'")
    with pytest.raises(MissingInput, match="'ask' has no field 'content'"):
        await tried("merge", {"ask": {}, "each": {"index": 0, "item": 1}})
    with pytest.raises(NotTestable, match="tested through its body"):
        await tried("each", {"prep": {"result": []}})


async def test_a_field_of_a_secret_is_refused_as_validation_refuses_it() -> None:
    # <env.KEY.x> is not "no secret named 'KEY'": KEY exists; a secret has no fields.
    fielded = graph(
        [block("hook", "webhook"), block("peek", "http", url="https://x.test/<env.KEY.x>")],
        [("hook", "peek")],
    )
    with pytest.raises(MissingInput) as missing:
        await tried("peek", {}, graph_json=fielded)
    assert str(missing.value).endswith("<env.KEY.x>: a secret is one value: write <env.NAME>")
    with pytest.raises(MissingInput, match="no secret named 'NOPE'"):
        await tried(
            "peek",
            {},
            graph_json=graph([block("peek", "http", url="https://x.test/<env.NOPE>")], []),
        )
