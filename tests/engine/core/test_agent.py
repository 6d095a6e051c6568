"""The agent block against OpenAI-compatible servers that misbehave."""

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from engine.core.executor import RunOptions
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.retry import RetryPolicy
from engine.core.services import Services


@pytest.fixture
async def odd_llm() -> AsyncIterator[str]:
    answers = iter(
        [
            web.Response(text="<html>gateway hiccup</html>", content_type="text/html"),
            web.json_response({"model": "m", "choices": []}),
            web.json_response(
                {
                    "model": "m",
                    "choices": [{"message": {"content": "fine"}}],
                    "usage": {"model": "x", "total_tokens": 3},
                }
            ),
        ]
    )

    async def completions(request: web.Request) -> web.Response:
        return next(answers)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_non_json_and_empty_answers_are_retried_then_read(odd_llm: str) -> None:
    from engine.blocks import REGISTRY
    from engine.core.events import EventBus
    from engine.core.executor import Executor
    from engine.core.graph import parse_graph
    from tests.engine.core.graphkit import Recorder, block, graph

    g = graph(
        [block("webhook", "webhook"), block("ai", "agent", user_prompt="hi")], [("webhook", "ai")]
    )
    factory = OutboundFactory(OutboundConfig(host_overrides={"api.openai.com": odd_llm}))
    recorder = Recorder()
    executor = Executor(
        parse_graph(g),
        REGISTRY,
        bus=EventBus(recorder),
        services=Services(outbound=factory, openai_api_key="k"),
        options=RunOptions(retry=RetryPolicy(max_attempts=3, base_delay=0.001)),
    )
    try:
        outcome = await executor.run({})
    finally:
        await factory.aclose()
    assert outcome.status == "succeeded", outcome.error
    assert outcome.outputs["ai"]["content"] == "fine"
    reasons = [e.data["error"] for e in recorder.of("step.retrying")]
    assert "other than JSON" in reasons[0] and "no choices" in reasons[1]
    finished = recorder.of("step.finished", name="ai")[0].data
    assert finished["attempts"] == 3 and finished["usage"] == [
        # The provider key the call counted against (the one a failover moved to, if any).
        {
            "model": "m",
            "total_tokens": 3,
            "provider": "openai",
            "endpoint": "api.openai.com/gpt-4o-mini",
        }
    ]
