"""The agent block's prompt limit: a prompt past KLYNTOS_AGENT_MAX_PROMPT_BYTES fails its step
before the provider is called, naming the reference that made it large and its size."""

from __future__ import annotations

import json
from typing import Any

from engine.blocks.agent import render_prompts
from engine.core.refs import Scope
from engine.core.services import DEFAULT_AGENT_MAX_PROMPT_BYTES
from engine.core.spec import BlockContext
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph


def big_list(megabytes: float) -> list[dict[str, Any]]:
    row = {"name": "Person", "company": "Company", "note": "x" * 200}
    size = len(json.dumps(row, ensure_ascii=False)) + 2
    return [dict(row, index=i) for i in range(int(megabytes * 1_000_000 / size))]


def summary_graph(prompt: str) -> dict[str, Any]:
    return graph(
        [block("webhook", "webhook"), block("summary", "agent", user_prompt=prompt)],
        [("webhook", "summary")],
    )


async def test_a_prompt_built_from_a_5_mb_list_fails_naming_the_reference_and_size(
    sim: RunningSimulator,
) -> None:
    leads = big_list(5)
    size = len(json.dumps(leads, ensure_ascii=False).encode())
    assert 5_250_000 <= size < 5_350_000  # a list of 5 MB and then some
    outcome, recorder = await run_graph(
        summary_graph("Summarise these leads:\n<webhook.body.leads>"), {"leads": leads}, sim=sim
    )
    assert outcome.status == "failed"
    [failed] = recorder.of("step.failed", name="summary")
    error = failed.data["error"]
    assert error.startswith(
        "prompt is 5.3 MB, over KLYNTOS_AGENT_MAX_PROMPT_BYTES (1 MB); "
        "<webhook.body.leads> contributes 5.3 MB"
    ), error
    assert "loop aggregations" in error
    assert failed.data["attempts"] == 1  # a size refusal is never retried
    assert "summary" in (outcome.error or "") and "<webhook.body.leads>" in (outcome.error or "")
    assert sim.control.stats()["requests"]["openai"] == 0  # refused before the provider


async def test_a_prompt_within_the_limit_is_sent_as_rendered(sim: RunningSimulator) -> None:
    leads = big_list(0.5)
    outcome, _ = await run_graph(
        summary_graph("Count <webhook.body.count>, leads <webhook.body.leads>"),
        {"leads": leads, "count": len(leads)},
        sim=sim,
    )
    assert outcome.status == "succeeded", outcome.error
    [call] = sim.control.stats()["received"]
    sent = call["json"]["messages"][-1]["content"]
    assert sent == f"Count {len(leads)}, leads {json.dumps(leads, ensure_ascii=False)}"


def context(config: dict[str, Any], scope: Scope) -> BlockContext:
    return BlockContext("a", "a", config, config, scope, services=None, attempt=1)


def test_the_largest_references_are_named_and_repeats_add_up() -> None:
    scope = Scope({"w": {"big": "é" * 300, "small": "s" * 50, "n": 7}})
    config = {
        "system_prompt": "About <w.small>",
        "user_prompt": "<w.big> and again <w.big>, <w.small>, <w.n>",
    }
    try:
        render_prompts(context(config, scope), max_bytes=1000)
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        message = str(exc)
    else:
        raise AssertionError("a 1.3 KB prompt passed a 1,000-byte limit")
    assert message == (
        "prompt is 1.3 KB, over KLYNTOS_AGENT_MAX_PROMPT_BYTES (1 KB); "
        "<w.big> contributes 1.2 KB, <w.small> contributes 100 bytes, <w.n> contributes 1 byte; "
        "summarise a list with loop aggregations instead"
    )


def test_a_prompt_whose_own_text_is_too_long_says_so() -> None:
    config = {"user_prompt": "x" * 2000 + "<w.n>"}
    try:
        render_prompts(context(config, Scope({"w": {"n": 1}})), max_bytes=1000)
    except Exception as exc:  # noqa: BLE001
        message = str(exc)
    else:
        raise AssertionError("a 2 KB prompt passed a 1,000-byte limit")
    assert message == (
        "prompt is 2 KB, over KLYNTOS_AGENT_MAX_PROMPT_BYTES (1 KB); "
        "<w.n> contributes 1 byte; the prompt's own text is 2 KB"
    )


def test_whole_references_keep_their_json_text_and_a_missing_system_prompt_is_empty() -> None:
    scope = Scope({"w": {"list": [1, "é"], "text": "plain"}})
    system, user = render_prompts(
        context({"user_prompt": "<w.list>"}, scope), DEFAULT_AGENT_MAX_PROMPT_BYTES
    )
    assert (system, user) == ("", '[1, "é"]')
    system, user = render_prompts(
        context({"system_prompt": "<w.text>", "user_prompt": " <w.text> "}, scope), 100
    )
    assert (system, user) == ("plain", " plain ")
