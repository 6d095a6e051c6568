"""Credentials never follow a redirect to another origin (issue 12.1).

Two real local servers: `first.example` answers 302 to `second.example` (or to itself);
the HTTP block sends a key from `<env.K>`, an Authorization, a Cookie and a header that
carries the secret through the webhook body. The second origin sees none of them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.blocks import REGISTRY
from engine.core.events import EventBus
from engine.core.executor import Executor, RunOptions
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.redaction import Redactor
from engine.core.retry import RetryPolicy
from engine.core.services import Services
from tests.engine.core.graphkit import Recorder, block, graph
from tests.hostile.web_upstream import upstream

SECRET = "sk-live-9f8e7d6c5b4a3210fedcba98"
SENT = {
    "X-Api-Key": "<env.K>",
    "Authorization": "Bearer <env.K>",
    "Cookie": "session=abc123",
    "Proxy-Authorization": "Basic dXNlcjpwdw==",
    "X-Forwarded-Key": "<webhook.body.key>",  # the secret's value, not an env reference
    "X-Trace": "trace-1",
}
CREDENTIALS = {"x-api-key", "authorization", "cookie", "proxy-authorization", "x-forwarded-key"}


async def run_http(
    url: str, overrides: dict[str, str], trusted: frozenset[str] = frozenset(), **config: Any
) -> tuple[str, Recorder, dict[str, Any]]:
    g = graph(
        [
            block("webhook", "webhook"),
            block("call", "http", url=url, headers=SENT, **config),
        ],
        [("webhook", "call")],
    )
    rec = Recorder()
    env = {"K": SECRET}
    factory = OutboundFactory(OutboundConfig(host_overrides=overrides, trusted_hosts=trusted))
    executor = Executor(
        parse_graph(g),
        REGISTRY,
        bus=EventBus(rec, Redactor(env.values())),
        services=Services(outbound=factory),
        env=env,
        options=RunOptions(retry=RetryPolicy(max_attempts=1)),
    )
    try:
        outcome = await executor.run({"key": SECRET})
    finally:
        await factory.aclose()
    return outcome.status, rec, outcome.outputs


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def test_a_cross_host_redirect_carries_no_credentials() -> None:
    async def to_second(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://second.example/landing?x=1")

    async with upstream({"/start": to_second}) as first, upstream() as second:
        overrides = {"first.example": first.url, "second.example": second.url}
        status, _, outputs = await run_http("http://first.example/start", overrides)

    assert status == "succeeded", outputs
    assert outputs["call"]["body"] == {"ok": True}
    sent = lowered(first.received[0])
    assert sent["x-api-key"] == SECRET and sent["cookie"] == "session=abc123"
    assert second.paths == ["/landing"]
    received = lowered(second.received[0])
    assert CREDENTIALS.isdisjoint(received), received
    assert SECRET not in repr(received)
    assert received["x-trace"] == "trace-1"  # ordinary headers still follow


async def test_a_redirect_to_another_port_of_the_same_host_is_another_origin() -> None:
    async with upstream() as second:

        async def to_other_port(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(f"{second.url}/landing")

        async with upstream({"/start": to_other_port}) as first:
            status, _, outputs = await run_http(
                "http://first.example/start",
                {"first.example": first.url},
                trusted=frozenset({second.url.removeprefix("http://")}),
            )
    assert status == "succeeded", outputs
    assert CREDENTIALS.isdisjoint(lowered(second.received[0]))


async def test_a_same_origin_redirect_keeps_the_credentials() -> None:
    async def to_landing(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landing")

    async with upstream({"/start": to_landing}) as first:
        status, _, outputs = await run_http(
            "http://first.example/start", {"first.example": first.url}
        )
    assert status == "succeeded", outputs
    assert first.paths == ["/start", "/landing"]
    landed = lowered(first.received[1])
    assert landed["x-api-key"] == SECRET and landed["authorization"] == f"Bearer {SECRET}"
    assert landed["cookie"] == "session=abc123" and landed["x-forwarded-key"] == SECRET


async def test_a_redirect_target_is_still_checked_by_the_ssrf_guard() -> None:
    async def to_loopback(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:9/admin")

    async with upstream({"/start": to_loopback}) as first:
        status, rec, _ = await run_http("http://first.example/start", {"first.example": first.url})
    assert status == "failed"
    error = rec.of("step.failed")[0].data["error"]
    assert "refused" in error and "127.0.0.1" in error


async def test_redirects_can_be_turned_off_per_block() -> None:
    async def to_second(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://second.example/landing")

    async with upstream({"/start": to_second}) as first, upstream() as second:
        overrides = {"first.example": first.url, "second.example": second.url}
        status, _, outputs = await run_http(
            "http://first.example/start", overrides, follow_redirects=False
        )
    assert status == "succeeded", outputs
    assert outputs["call"]["status"] == 302
    assert outputs["call"]["headers"]["Location"] == "http://second.example/landing"
    assert second.received == []
