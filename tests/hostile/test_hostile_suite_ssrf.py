"""SSRF: every spelling of a private address, DNS rebinding, redirects into the private
network, non-HTTP schemes and CR/LF in headers — through the HTTP block a workflow author
controls, on the one guarded client factory, against real servers on 127.0.0.1.

The private target is a real server on loopback: a hole shows as a request it received.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import aiohappyeyeballs
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from rest_framework.test import APIClient

from engine.blocks import REGISTRY
from engine.core import ssrf
from engine.core.events import EventBus
from engine.core.executor import Executor, RunOutcome
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.services import Services
from tests.engine.core.graphkit import Recorder
from tests.hostile.conftest import REAL_RUN, Upstream, serve


def http_graph(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {"id": "call", "type": "http", "name": "call", "config": config},
        ],
        "edges": [{"source": "hook", "target": "call"}],
    }


async def run_http(
    config: dict[str, Any],
    body: Any = None,
    *,
    trusted: tuple[str, ...] = (),
    overrides: dict[str, str] | None = None,
) -> tuple[RunOutcome, Recorder]:
    """One HTTP block, run by the real executor on a factory configured like production."""
    recorder = Recorder()
    factory = OutboundFactory(
        OutboundConfig(host_overrides=overrides or {}, trusted_hosts=frozenset(trusted), timeout=5)
    )
    services = Services(outbound=factory)
    executor = Executor(
        parse_graph(http_graph(config)), REGISTRY, bus=EventBus(recorder), services=services
    )
    try:
        outcome = await executor.run(body or {})
    finally:
        await services.aclose()
    return outcome, recorder


def step_error(recorder: Recorder) -> str:
    failed = recorder.of("step.failed", block="call")
    assert failed, f"the HTTP step did not fail: {[e.type for e in recorder.events]}"
    return str(failed[0].data["error"])


# --- spellings of private addresses -------------------------------------------------------

SPELLINGS = [
    "127.0.0.1",
    "2130706433",  # decimal
    "0x7f000001",  # hex
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",  # octal
    "0177.0000.0000.0001",
    "127.1",  # short form
    "127.0.1",
    "127.000.000.001",
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[64:ff9b::7f00:1]",  # NAT64
    "[2002:7f00:1::]",  # 6to4
    "0.0.0.0",
    "0",
    "localhost",
    "LOCALHOST",
    "127.0.0.1.",
]


@pytest.mark.parametrize("host", SPELLINGS)
async def test_every_spelling_of_loopback_is_refused(private_target: Upstream, host: str) -> None:
    outcome, recorder = await run_http({"url": f"http://{host}:{private_target.port}/internal"})
    assert outcome.status == "failed"
    assert "refused to connect" in step_error(recorder)
    assert private_target.requests == []


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",  # cloud metadata
        "0xa9fea9fe",
        "2852039166",
        "[::ffff:169.254.169.254]",
        "10.0.0.1",
        "012.0.0.1",  # octal 10.0.0.1
        "172.16.0.1",
        "192.168.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "[fd00:ec2::254]",
        "[fe80::1]",
        "224.0.0.1",
        "255.255.255.255",
    ],
)
async def test_private_metadata_and_reserved_addresses_are_refused_before_connecting(
    host: str,
) -> None:
    outcome, recorder = await run_http({"url": f"http://{host}/latest/meta-data/"})
    assert outcome.status == "failed"
    assert "refused to connect" in step_error(recorder)


async def test_a_url_taken_whole_from_item_data_is_guarded_too(private_target: Upstream) -> None:
    outcome, recorder = await run_http(
        {"url": "<hook.body.target>"}, {"target": f"http://0x7f000001:{private_target.port}/"}
    )
    assert "refused to connect" in step_error(recorder)
    assert private_target.requests == []


async def test_a_reference_cannot_change_the_host(private_target: Upstream) -> None:
    """Item data inside a URL is encoded for where it lands: it never moves the authority."""
    for value in [f"@127.0.0.1:{private_target.port}", f"x@127.0.0.1:{private_target.port}/"]:
        outcome, recorder = await run_http({"url": "http://<hook.body.host>/path"}, {"host": value})
        assert "is not a host name" in step_error(recorder)
    outcome, recorder = await run_http(
        {"url": "http://example.invalid/<hook.body.path>"},
        {"path": f"@127.0.0.1:{private_target.port}/x"},
    )
    assert outcome.status == "failed"
    assert private_target.requests == []


# --- DNS rebinding ---------------------------------------------------------------------------

PUBLIC = "93.184.216.34"


class RebindingDNS(AbstractResolver):
    """An attacker's DNS: the first answer is public, every later one is loopback."""

    def __init__(self) -> None:
        self.answers: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = PUBLIC if not self.answers else "127.0.0.1"
        self.answers.append(address)
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RebindingDNS, list[str]]]:
    """The resolver the guard wraps answers like an attacker's DNS; connections to the
    public address are refused at the socket (the network boundary), any other address is
    really connected to, so a second resolution would reach the loopback server."""
    dns = RebindingDNS()
    monkeypatch.setattr(ssrf, "DefaultResolver", lambda: dns)
    connected: list[str] = []
    real_start = aiohappyeyeballs.start_connection

    async def start_connection(addr_infos: Any, **kwargs: Any) -> socket.socket:
        addresses = [info[4][0] for info in addr_infos]
        connected.extend(addresses)
        if PUBLIC in addresses:
            raise OSError(errno.ECONNREFUSED, f"connect to {PUBLIC} refused")
        return await real_start(addr_infos, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", start_connection)
    yield dns, connected


async def test_dns_rebinding_never_reaches_the_private_address(
    private_target: Upstream, rebinding_dns: tuple[RebindingDNS, list[str]]
) -> None:
    dns, connected = rebinding_dns
    url = f"http://rebind.attacker.example:{private_target.port}/"
    # Each run builds a fresh client (no DNS cache shared between them).
    first, first_events = await run_http({"url": url})
    second, second_events = await run_http({"url": url})
    # The first lookup said "public": the connection went there and only there.
    assert dns.answers[0] == PUBLIC
    assert set(connected) == {PUBLIC}
    assert "refused" in step_error(first_events)
    # Every later lookup said "loopback": refused by the resolver, never connected to.
    assert "refused to connect to 127.0.0.1 (loopback)" in step_error(second_events)
    assert private_target.requests == []
    assert ipaddress.ip_address(PUBLIC).is_global


async def test_a_lookup_mixing_public_and_private_answers_is_refused_whole(
    private_target: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    class MixedDNS(RebindingDNS):
        async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> Any:
            return [
                ResolveResult(
                    hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0
                )
                for a in (PUBLIC, "127.0.0.1")
            ]

    monkeypatch.setattr(ssrf, "DefaultResolver", MixedDNS)
    outcome, recorder = await run_http({"url": f"http://mixed.example:{private_target.port}/"})
    assert "refused to connect to 127.0.0.1" in step_error(recorder)
    assert private_target.requests == []


# --- redirects -----------------------------------------------------------------------------


def redirector(location: str, status: int = 302) -> Iterator[Upstream]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return serve(handler)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    "spelling", ["127.0.0.1", "localhost", "0x7f000001", "[::ffff:127.0.0.1]", "2130706433"]
)
async def test_a_redirect_into_the_private_network_is_refused(
    private_target: Upstream, status: int, spelling: str
) -> None:
    """The first hop is a trusted host; the hop it redirects to is checked again."""
    location = f"http://{spelling}:{private_target.port}/internal"
    for public in redirector(location, status):
        outcome, recorder = await run_http(
            {"url": f"{public.base_url}/start", "method": "POST", "body": {"a": 1}},
            trusted=(public.hostport,),
        )
        assert len(public.requests) == 1
    assert "refused to connect" in step_error(recorder)
    assert private_target.requests == []


async def test_a_redirect_from_an_overridden_host_is_refused(private_target: Upstream) -> None:
    """Host overrides route a public name to a local base: its redirects are not trusted."""
    for public in redirector(f"http://127.0.0.1:{private_target.port}/internal"):
        outcome, recorder = await run_http(
            {"url": "https://api.partner.example/v1/lookup"},
            overrides={"api.partner.example": public.base_url},
        )
        assert len(public.requests) == 1
    assert "refused to connect" in step_error(recorder)
    assert private_target.requests == []


async def test_redirect_chains_are_bounded(upstream: Upstream) -> None:
    async def loop_forever(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/again"})

    for server in serve(loop_forever):
        outcome, recorder = await run_http(
            {"url": f"{server.base_url}/start"}, trusted=(server.hostport,)
        )
        assert len(server.requests) == 6  # the first request and 5 redirects
    assert "more than 5 redirects" in step_error(recorder)


# --- schemes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://127.0.0.1/",
        "dict://127.0.0.1:11211/stat",
        "ldap://127.0.0.1/",
        "jar:http://127.0.0.1/x.jar!/",
        "//127.0.0.1/",
        "/etc/passwd",
    ],
)
async def test_non_http_schemes_are_refused(url: str) -> None:
    # Typed in the config: a validation error. Taken from item data: the step fails.
    assert REGISTRY["http"].check({"url": url}) == [
        ("url", "the URL must start with http:// or https://")
    ]
    outcome, recorder = await run_http({"url": "<hook.body.url>"}, {"url": url})
    assert outcome.status == "failed"
    assert "http(s)" in step_error(recorder) or "refus" in step_error(recorder)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_x"])
async def test_a_redirect_to_another_scheme_is_refused(location: str) -> None:
    for public in redirector(location):
        outcome, recorder = await run_http(
            {"url": f"{public.base_url}/start"}, trusted=(public.hostport,)
        )
    assert outcome.status == "failed"
    assert "http(s)" in step_error(recorder)


# --- CR/LF in headers and URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rX-Injected: 1", "\r\n\r\nGET / HTTP/1.1"],
)
async def test_line_breaks_in_a_header_value_fail_the_step_before_sending(
    upstream: Upstream, value: str
) -> None:
    outcome, recorder = await run_http(
        {"url": f"{upstream.base_url}/x", "headers": {"X-Lead": "<hook.body.v>"}},
        {"v": value},
        trusted=(upstream.hostport,),
    )
    assert "header 'X-Lead' contains a line break" in step_error(recorder)
    assert upstream.requests == []


async def test_line_breaks_in_a_header_name_never_reach_the_wire(upstream: Upstream) -> None:
    outcome, recorder = await run_http(
        {"url": f"{upstream.base_url}/x", "headers": {"X-A\r\nX-Injected": "1"}},
        trusted=(upstream.hostport,),
    )
    assert outcome.status == "failed"
    assert all("X-Injected" not in r["headers"] for r in upstream.requests)


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a HTTP/1.1\r\nHost: evil"])
async def test_line_breaks_in_a_url_value_are_encoded_not_sent(
    upstream: Upstream, value: str
) -> None:
    outcome, recorder = await run_http(
        {"url": f"{upstream.base_url}/lead/<hook.body.v>", "query": {"q": "<hook.body.v>"}},
        {"v": value},
        trusted=(upstream.hostport,),
    )
    assert outcome.status == "succeeded", step_error(recorder)
    (seen,) = upstream.requests
    assert "X-Injected" not in seen["headers"] and seen["headers"]["Host"] != "evil"
    assert "\r" not in seen["path"] and "\n" not in seen["path"]
    assert "%0D%0A" in seen["path"]


async def test_line_breaks_in_a_whole_url_reference_are_not_sent(upstream: Upstream) -> None:
    outcome, recorder = await run_http(
        {"url": "<hook.body.url>"},
        {"url": f"{upstream.base_url}/x HTTP/1.1\r\nX-Injected: 1\r\n\r\n"},
        trusted=(upstream.hostport,),
    )
    assert all("X-Injected" not in r["headers"] for r in upstream.requests)
    assert all("\r" not in r["path"] and "\n" not in r["path"] for r in upstream.requests)


# --- through the whole product ---------------------------------------------------------------


@REAL_RUN
def test_a_saved_workflow_cannot_reach_loopback_through_the_api(
    api: APIClient, private_target: Upstream, finish_run: Any
) -> None:
    graph = http_graph({"url": f"http://0x7f000001:{private_target.port}/internal"})
    created = api.post("/api/workflows/", {"name": "ssrf", "graph": graph}, format="json")
    assert created.status_code == 201, created.content
    started = api.post(f"/api/workflows/{created.json()['id']}/runs/", {}, format="json")
    assert started.status_code == 201, started.content
    run = finish_run(started.json()["id"])
    assert run.status == "failed"
    assert "refused to connect to 127.0.0.1 (loopback)" in (run.error or "")
    assert private_target.requests == []
