"""The agent block's request and the endpoint's answers: what is sent (the operator's key, the
block's model and response format) and how a refusal reads (the endpoint's own message, or
its answer as the openai SDK worded it), retried only when the status is transient."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aiohttp import web

from engine.blocks.agent import _structured, _validator
from engine.core.errors import BlockError
from engine.core.executor import RunOptions
from engine.core.retry import RetryPolicy
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

COMPLETION = {
    "model": "gpt-4o-mini-2024",
    "choices": [{"message": {"role": "assistant", "content": '{"score": 7}'}}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
}


@dataclass
class Endpoint:
    base_url: str = ""
    answers: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    state = Endpoint()

    async def chat(request: web.Request) -> web.Response:
        state.received.append((dict(request.headers), await request.json()))
        status, text, headers = state.answers.pop(0) if state.answers else (200, "", {})
        if status == 200 and not text:
            return web.json_response(COMPLETION)
        return web.Response(status=status, text=text, headers=headers)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def agent_graph(**config: Any) -> dict[str, Any]:
    return graph(
        [block("webhook", "webhook"), block("score", "agent", user_prompt="Rate it", **config)],
        [("webhook", "score")],
    )


async def run(endpoint: Endpoint, **config: Any) -> tuple[Any, Any]:
    options = RunOptions(retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01))
    # The fixture serves api.openai.com's route (run_graph overrides the provider hosts).
    sim = cast(RunningSimulator, endpoint)
    return await run_graph(agent_graph(**config), {}, sim=sim, options=options)


async def test_the_request_carries_the_key_model_and_response_format(endpoint: Endpoint) -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}}
    outcome, _ = await run(endpoint, model="gpt-4o-mini", temperature=0, response_format=schema)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.outputs["score"]["score"] == 7
    assert outcome.outputs["score"]["model"] == "gpt-4o-mini-2024"
    assert outcome.outputs["score"]["usage"]["total_tokens"] == 14
    [(headers, body)] = endpoint.received
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0
    assert body["messages"] == [{"role": "user", "content": "Rate it"}]
    assert body["response_format"]["json_schema"] == {"name": "score_response", "schema": schema}
    # Sent through the SDK's low-level post: the body is exactly the block's, no more.
    assert set(body) == {"model", "messages", "temperature", "response_format"}
    assert headers["Content-Type"] == "application/json"
    # The SDK's per-request headers stay; its description of this machine is left out.
    names = {name.lower() for name in headers}
    assert "x-stainless-retry-count" in names
    assert not {"x-stainless-os", "x-stainless-runtime-version"} & names


async def test_a_refusal_quotes_the_endpoints_message_and_is_not_retried(
    endpoint: Endpoint,
) -> None:
    error = {"error": {"message": "Request too large for gpt-4o-mini", "type": "invalid"}}
    endpoint.answers.append((413, json.dumps(error), {}))
    outcome, recorder = await run(endpoint)
    assert outcome.status == "failed"
    [failed] = recorder.of("step.failed", name="score")
    assert failed.data["error"] == "LLM endpoint returned 413: Request too large for gpt-4o-mini"
    assert len(endpoint.received) == 1


async def test_an_answer_without_a_message_is_quoted_as_the_sdk_worded_it(
    endpoint: Endpoint,
) -> None:
    endpoint.answers.append((400, json.dumps({"detail": "no"}), {}))
    outcome, recorder = await run(endpoint)
    [failed] = recorder.of("step.failed", name="score")
    assert failed.data["error"] == "LLM endpoint returned 400: Error code: 400 - {'detail': 'no'}"
    endpoint.answers.append((400, "plain words", {}))
    outcome, recorder = await run(endpoint)
    [failed] = recorder.of("step.failed", name="score")
    assert failed.data["error"] == "LLM endpoint returned 400: plain words"


async def test_a_transient_status_is_retried_and_a_non_json_answer_too(endpoint: Endpoint) -> None:
    endpoint.answers.append((429, "slow down", {"Retry-After": "0"}))
    outcome, _ = await run(endpoint)
    assert outcome.status == "succeeded", outcome.error
    assert len(endpoint.received) == 2
    endpoint.answers.extend([(200, "<html>oops</html>", {}), (200, "<html>oops</html>", {})])
    outcome, recorder = await run(endpoint)
    [failed] = recorder.of("step.failed", name="score")
    assert failed.data["error"].startswith("LLM endpoint answered with something other than JSON")
    assert failed.data["attempts"] == 2


def test_a_response_formats_validator_is_built_once_per_config_and_checks_its_own() -> None:
    first = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    second = {**first, "required": []}
    assert _validator(first) is _validator(first)
    assert _validator(second) is not _validator(first)
    assert _structured('{"a": 1}', first) == {"a": 1}
    with pytest.raises(BlockError, match="'a' is a required property"):
        _structured("{}", first)
    assert _structured("{}", second) == {}
