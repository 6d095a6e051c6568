"""Outbound client factory: SSRF guard, host overrides, openai and slack_sdk wiring.

Real sockets only: every target is a tiny aiohttp.web server on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from engine.core.outbound import (
    BlockedAddressError,
    OutboundConfig,
    OutboundFactory,
    parse_host_overrides,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    raw_path: str
    host: str | None
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    server: TestServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


ServerMaker = Callable[..., Awaitable[Target]]


def _chat_completion(model: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


@pytest.fixture
async def make_server() -> AsyncIterator[ServerMaker]:
    servers: list[TestServer] = []

    async def make(routes: dict[str, Handler] | None = None) -> Target:
        target: Target

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            target.seen.append(
                Seen(request.method, request.raw_path, request.host, dict(request.headers), body)
            )
            handler = (routes or {}).get(request.path)
            if handler is not None:
                return await handler(request)
            return web.json_response({"ok": True, "path": request.raw_path})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        target = Target(server)
        return target

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def factories() -> AsyncIterator[Callable[..., OutboundFactory]]:
    made: list[OutboundFactory] = []

    def make(**config: object) -> OutboundFactory:
        factory = OutboundFactory(OutboundConfig(**config))  # type: ignore[arg-type]
        made.append(factory)
        return factory

    yield make
    for factory in made:
        await factory.aclose()


# -- parsing and URL rewriting ----------------------------------------------------


def test_parse_host_overrides() -> None:
    assert parse_host_overrides(
        "api.openai.com=http://127.0.0.1:8765, slack.com=http://127.0.0.1:8765/"
    ) == {"api.openai.com": "http://127.0.0.1:8765", "slack.com": "http://127.0.0.1:8765"}
    assert parse_host_overrides("") == {}
    assert parse_host_overrides("API.Example.COM=https://sim.local/prefix") == {
        "api.example.com": "https://sim.local/prefix"
    }


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("api.openai.com", "api.openai.com"),
        ("ok.example=http://a,broken", "broken"),
        ("=http://127.0.0.1:1", "=http://127.0.0.1:1"),
        ("api.openai.com=127.0.0.1:8765", "api.openai.com=127.0.0.1:8765"),
        ("api.openai.com=ftp://127.0.0.1", "api.openai.com=ftp://127.0.0.1"),
        ("api.openai.com=http://", "api.openai.com=http://"),
        ("https://api.openai.com=http://127.0.0.1:1", "https://api.openai.com"),
    ],
)
def test_parse_host_overrides_errors(text: str, bad: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_host_overrides(text)
    assert bad in str(info.value)


def test_rewrite_url() -> None:
    factory = OutboundFactory(
        OutboundConfig(
            host_overrides={
                "api.openai.com": "http://127.0.0.1:8765",
                "slack.com": "http://127.0.0.1:8765/slack/",
            }
        )
    )
    assert factory.rewrite_url("https://api.openai.com/v1/chat?x=%2F&y=1") == (
        "http://127.0.0.1:8765/v1/chat?x=%2F&y=1",
        True,
    )
    assert factory.rewrite_url("https://API.OpenAI.com") == ("http://127.0.0.1:8765/", True)
    assert factory.rewrite_url("https://slack.com/api/chat.postMessage") == (
        "http://127.0.0.1:8765/slack/api/chat.postMessage",
        True,
    )
    assert factory.slack_base_url("https://slack.com/api/") == "http://127.0.0.1:8765/slack/api/"
    assert factory.rewrite_url("https://example.com/a") == ("https://example.com/a", False)
    assert factory.rewrite_url("https://sub.slack.com/a") == ("https://sub.slack.com/a", False)


def test_config_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="bad.example"):
        OutboundFactory(OutboundConfig(host_overrides={"bad.example": "127.0.0.1:1"}))


def test_session_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        OutboundFactory().aiohttp_session()


# -- the SSRF guard through the real httpx client -----------------------------------


async def _assert_blocked(
    client: httpx.AsyncClient, url: str, address: str | tuple[str, ...], reason: str
) -> BlockedAddressError:
    with pytest.raises(BlockedAddressError) as info:
        await client.get(url)
    addresses = (address,) if isinstance(address, str) else address
    assert info.value.address in addresses
    assert info.value.reason == reason
    assert info.value.address in str(info.value) and reason in str(info.value)
    return info.value


async def test_ip_literals_are_refused_before_connecting(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    factory = factories()
    client = factory.httpx_client()
    port = target.port
    await _assert_blocked(client, f"http://127.0.0.1:{port}/x", "127.0.0.1", "loopback")
    await _assert_blocked(client, f"http://[::ffff:127.0.0.1]:{port}/", "::ffff:7f00:1", "loopback")
    err = await _assert_blocked(client, f"http://0x7f000001:{port}/", "127.0.0.1", "loopback")
    assert err.host == "0x7f000001"
    await _assert_blocked(client, f"http://2130706433:{port}/", "127.0.0.1", "loopback")
    await _assert_blocked(client, f"http://127.1:{port}/", "127.0.0.1", "loopback")
    await _assert_blocked(
        client, "http://169.254.169.254/latest/meta-data", "169.254.169.254", "metadata"
    )
    assert target.seen == []
    # Refused by the transport itself: the aiohttp session was never even needed.
    assert factory._session is None


async def test_names_resolving_to_loopback_are_refused_by_the_resolver(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    factory = factories()
    err = await _assert_blocked(
        factory.httpx_client(), f"http://localhost:{target.port}/", ("127.0.0.1", "::1"), "loopback"
    )
    assert err.host == "localhost"
    # The refusal came from the connector's resolver: aiohttp did not bypass it for a name.
    assert any(
        frame.f_code.co_name == "resolve_checked"
        for frame, _ in traceback.walk_tb(err.__traceback__)
    )
    assert target.seen == []


async def test_override_reaches_server_with_path_query_and_encoding(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    factory = factories(host_overrides={"public.example": f"http://127.0.0.1:{target.port}"})
    raw = "/a%2Fb%7E/c%20d?q=%41%20b&x=a+b&y=%2F%26"
    response = await factory.httpx_client().post(f"https://public.example{raw}", content=b"payload")
    assert response.status_code == 200
    assert [s.raw_path for s in target.seen] == [raw]
    assert target.seen[0].host == f"127.0.0.1:{target.port}"
    assert target.seen[0].body == b"payload"
    assert target.seen[0].headers["User-Agent"] == "Klyntos/0.1"


async def test_redirect_from_overridden_host_to_loopback_is_refused(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    other = await make_server()

    async def to_secret(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"http://127.0.0.1:{other.port}/secret")

    async def relative(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/landing?via=relative")

    target = await make_server({"/go": to_secret, "/rel": relative})
    factory = factories(host_overrides={"public.example": f"http://127.0.0.1:{target.port}"})
    client = factory.httpx_client()
    await _assert_blocked(client, "http://public.example/go", "127.0.0.1", "loopback")
    assert [s.raw_path for s in target.seen] == ["/go"]
    assert other.seen == []
    # A relative redirect stays on the overridden host, so it stays routed and trusted.
    response = await client.get("http://public.example/rel")
    assert response.json()["path"] == "/landing?via=relative"
    assert str(response.url) == "http://public.example/landing?via=relative"


async def test_override_target_named_directly_is_not_trusted(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    factory = factories(
        host_overrides={
            "public.example": f"http://localhost:{target.port}",
            "ip.example": f"http://127.0.0.1:{target.port}",
        }
    )
    client = factory.httpx_client()
    assert (await client.get("http://public.example/ok")).status_code == 200
    assert (await client.get("http://ip.example/ok")).status_code == 200
    await _assert_blocked(
        client, f"http://localhost:{target.port}/direct", ("127.0.0.1", "::1"), "loopback"
    )
    await _assert_blocked(client, f"http://127.0.0.1:{target.port}/direct", "127.0.0.1", "loopback")
    assert [s.raw_path for s in target.seen] == ["/ok", "/ok"]


async def test_trusted_hosts(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    other = await make_server()
    factory = factories(trusted_hosts=frozenset({f"127.0.0.1:{target.port}", "localhost"}))
    client = factory.httpx_client()
    assert (await client.get(f"http://127.0.0.1:{target.port}/ip")).status_code == 200
    assert (await client.get(f"http://localhost:{other.port}/name")).status_code == 200
    await _assert_blocked(client, f"http://127.0.0.1:{other.port}/", "127.0.0.1", "loopback")
    factory.trust_base_url(f"http://127.0.0.1:{other.port}/v1")
    assert (await client.get(f"http://127.0.0.1:{other.port}/later")).status_code == 200
    assert [s.raw_path for s in target.seen] == ["/ip"]
    assert [s.raw_path for s in other.seen] == ["/name", "/later"]


async def test_shared_client_keeps_no_cookies(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    async def set_cookie(request: web.Request) -> web.StreamResponse:
        response = web.json_response({})
        response.set_cookie("session", "tenant-a")
        return response

    target = await make_server({"/login": set_cookie})
    factory = factories(host_overrides={"public.example": f"http://127.0.0.1:{target.port}"})
    client = factory.httpx_client()
    await client.get("http://public.example/login")
    await client.get("http://public.example/next")
    assert "Cookie" not in target.seen[1].headers


async def test_cookies_given_to_the_shared_client_are_not_kept(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    factory = factories(host_overrides={"public.example": f"http://127.0.0.1:{target.port}"})
    client = factory.httpx_client()
    client.cookies = {"session": "tenant-a"}  # type: ignore[assignment]
    client.cookies.set("other", "tenant-b")
    await client.get("http://public.example/")
    assert not client.cookies and "Cookie" not in target.seen[0].headers


async def test_a_remembered_route_is_rebased_and_a_resolved_one_checked_each_time(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    factory = factories(host_overrides={"public.example": f"http://localhost:{target.port}"})
    client = factory.httpx_client()
    raw = "/v1/x%7E?q=%2F"
    for _ in range(2):
        response = await client.post(f"https://public.example{raw}", content=b"payload")
        assert str(response.request.url) == f"https://public.example{raw}"
        await _assert_blocked(
            client, f"http://localhost:{target.port}/direct", ("127.0.0.1", "::1"), "loopback"
        )
    assert [(s.raw_path, s.host, s.body) for s in target.seen] == [
        (raw, f"localhost:{target.port}", b"payload")
    ] * 2


async def test_the_shared_client_keeps_connections_alive_without_saying_so(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    peers: list[object] = []

    async def peer(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({})

    target = await make_server({"/peer": peer})
    factory = factories(host_overrides={"public.example": f"http://127.0.0.1:{target.port}"})
    client = factory.httpx_client()
    for _ in range(2):
        assert (await client.get("http://public.example/peer", timeout=5)).status_code == 200
    assert peers[0] == peers[1]  # one connection, reused (HTTP/1.1's default)
    assert "Connection" not in target.seen[0].headers


async def test_clients_are_built_once(factories: Callable[..., OutboundFactory]) -> None:
    factory = factories()
    assert factory.httpx_client() is factory.httpx_client()
    assert factory.aiohttp_session() is factory.aiohttp_session()
    first = factory.openai_client(api_key="k", base_url="https://api.openai.com/v1")
    second = factory.openai_client(api_key="k", base_url="https://api.openai.com/v1")
    assert first._client is second._client is factory.httpx_client()


async def test_aclose_closes_everything(factories: Callable[..., OutboundFactory]) -> None:
    factory = factories()
    client = factory.httpx_client()
    session = factory.aiohttp_session()
    await factory.aclose()
    assert client.is_closed and session.closed
    with pytest.raises(RuntimeError):
        factory.httpx_client()


# -- openai -------------------------------------------------------------------------


async def test_openai_client_via_override(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    async def completions(request: web.Request) -> web.StreamResponse:
        payload = json.loads(await request.read())
        return web.json_response(_chat_completion(payload["model"]))

    target = await make_server({"/v1/chat/completions": completions})
    factory = factories(host_overrides={"api.openai.com": f"http://127.0.0.1:{target.port}"})
    client = factory.openai_client(api_key="sk-test", base_url="https://api.openai.com/v1")
    assert client.max_retries == 0
    result = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "ping"}]
    )
    assert result.choices[0].message.content == "pong"
    assert [s.raw_path for s in target.seen] == ["/v1/chat/completions"]
    assert target.seen[0].headers["Authorization"] == "Bearer sk-test"
    # Closing a borrowed client must not close the factory's shared httpx client.
    await client.close()
    assert not factory.httpx_client().is_closed
    await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert len(target.seen) == 2


async def test_a_new_openai_clients_first_request_hands_nothing_to_a_thread(
    make_server: ServerMaker,
    factories: Callable[..., OutboundFactory],
    thread_hops: list[object],
) -> None:
    # The SDK looked up the platform for headers we leave out on a worker thread before
    # each new client's first request: a run's first LLM calls each waited for that hop.
    async def completions(request: web.Request) -> web.StreamResponse:
        return web.json_response(_chat_completion("gpt-test"))

    target = await make_server({"/v1/chat/completions": completions})
    factory = factories(host_overrides={"api.openai.com": f"http://127.0.0.1:{target.port}"})
    before = len(thread_hops)  # the server's own start-up is not the client's
    client = factory.openai_client(api_key="sk-test", base_url="https://api.openai.com/v1")
    result = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "ping"}]
    )
    assert result.choices[0].message.content == "pong"
    assert thread_hops[before:] == []
    assert not any(name.lower().startswith("x-stainless-os") for name in target.seen[0].headers)


async def test_openai_trusted_base_url_and_blocked_base_url(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    async def completions(request: web.Request) -> web.StreamResponse:
        return web.json_response(_chat_completion("local"))

    target = await make_server({"/v1/chat/completions": completions})
    factory = factories()
    # Untrusted: built by hand on the shared client, so the base URL is not trusted.
    blocked = openai.AsyncOpenAI(
        api_key="k",
        base_url=f"http://127.0.0.1:{target.port}/v1",
        max_retries=0,
        http_client=factory.httpx_client(),
    )
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1 \(loopback\)"):
        await blocked.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert target.seen == []
    # Operator-configured base URL (e.g. a local OpenAI-compatible server) is trusted.
    trusted = factory.openai_client(api_key="k", base_url=f"http://127.0.0.1:{target.port}/v1")
    result = await trusted.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    assert result.choices[0].message.content == "pong"
    assert len(target.seen) == 1


# -- slack_sdk ------------------------------------------------------------------------


async def test_slack_client_via_override(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    async def post_message(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "channel": "C1", "ts": "1700000000.000100"})

    target = await make_server({"/api/chat.postMessage": post_message})
    factory = factories(host_overrides={"slack.com": f"http://127.0.0.1:{target.port}"})
    slack = AsyncWebClient(
        token="xoxb",
        session=factory.aiohttp_session(),
        base_url=factory.slack_base_url("https://slack.com/api/"),
    )
    response = await slack.chat_postMessage(channel="C1", text="hello")
    assert response["ok"] is True and response["ts"] == "1700000000.000100"
    assert [s.raw_path for s in target.seen] == ["/api/chat.postMessage"]
    assert target.seen[0].headers["Authorization"] == "Bearer xoxb"
    assert json.loads(target.seen[0].body) == {"channel": "C1", "text": "hello"}


async def test_shared_session_refuses_private_destinations(
    make_server: ServerMaker, factories: Callable[..., OutboundFactory]
) -> None:
    target = await make_server()
    factory = factories(host_overrides={"slack.com": f"http://127.0.0.1:{target.port}"})
    session = factory.aiohttp_session()
    other = await make_server()
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1 \(loopback\)"):
        await session.get(f"http://127.0.0.1:{other.port}/literal")
    with pytest.raises(BlockedAddressError, match="loopback"):
        await session.get(f"http://localhost:{other.port}/name")
    slack = AsyncWebClient(
        token="xoxb", session=session, base_url=f"http://localhost:{other.port}/api/"
    )
    with pytest.raises(BlockedAddressError, match="loopback"):
        await slack.chat_postMessage(channel="C1", text="hello")
    assert other.seen == []
    assert isinstance(session, aiohttp.ClientSession)


def test_engine_core_does_not_import_django() -> None:
    code = (
        "import sys, engine.core.outbound, engine.core.ssrf; "
        "sys.exit(1 if any(m.split('.')[0] == 'django' for m in sys.modules) else 0)"
    )
    repo = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, check=False)
    assert result.returncode == 0
