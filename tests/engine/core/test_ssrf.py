"""SSRF address policy: which addresses are refused, and which hosts are IP literals."""

from __future__ import annotations

import ipaddress
import pickle
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from engine.core.ssrf import (
    ADDRESS_HINT,
    BlockedAddressError,
    GuardedConnector,
    GuardedResolver,
    address_refusal,
    literal_address,
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "not globally routable"),
        ("224.0.0.1", "multicast"),
        ("233.1.1.1", "multicast"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("192.0.2.1", "not globally routable"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_allowed_addresses(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("169.254.169.254", "169.254.169.254"),
    ],
)
def test_literal_address(host: str, expected: str) -> None:
    ip = literal_address(host)
    assert ip == ipaddress.ip_address(expected)
    assert address_refusal(ip) is not None


@pytest.mark.parametrize("host", ["example.com", "localhost", "dead.beef", "cafe", "a1.b2", ""])
def test_names_are_not_literals(host: str) -> None:
    assert literal_address(host) is None


def test_blocked_address_error_message_and_attributes() -> None:
    err = BlockedAddressError("evil.example", ipaddress.ip_address("127.0.0.1"), "loopback")
    assert str(err) == (
        f"refused to connect to 127.0.0.1 (loopback) for host 'evil.example': {ADDRESS_HINT}"
    )
    assert (err.host, err.address, err.reason) == ("evil.example", "127.0.0.1", "loopback")
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) and clone.address == "127.0.0.1"


class _FixedResolver(AbstractResolver):
    """Answers every lookup with fixed addresses (DNS stand-in for unit tests)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_guarded_resolver_refuses_if_any_address_is_refused() -> None:
    inner = _FixedResolver(["8.8.8.8", "10.1.2.3"])
    resolver = GuardedResolver(inner=inner)
    with pytest.raises(BlockedAddressError) as info:
        await resolver.resolve("rebind.example", 443)
    assert (info.value.host, info.value.address, info.value.reason) == (
        "rebind.example",
        "10.1.2.3",
        "private",
    )
    assert inner.calls == 1


async def test_guarded_resolver_allows_public_and_trusted() -> None:
    public = GuardedResolver(inner=_FixedResolver(["8.8.8.8", "2606:4700::1111"]))
    assert [r["host"] for r in await public.resolve("dns.example", 443)] == [
        "8.8.8.8",
        "2606:4700::1111",
    ]
    trusted = GuardedResolver(
        lambda host, port: (host, port) == ("sim.internal", 8765),
        inner=_FixedResolver(["127.0.0.1"]),
    )
    assert [r["host"] for r in await trusted.resolve("sim.internal", 8765)] == ["127.0.0.1"]
    with pytest.raises(BlockedAddressError):
        await trusted.resolve("sim.internal", 8766)
    with pytest.raises(BlockedAddressError):
        await trusted.resolve_checked("sim.internal", 8765, honour_trust=False)


async def test_guarded_resolver_real_dns_localhost() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(BlockedAddressError) as info:
            await resolver.resolve("localhost", 80, family=socket.AF_UNSPEC)
        assert info.value.reason == "loopback"
        assert info.value.address in ("127.0.0.1", "::1")
    finally:
        await resolver.close()


async def test_guarded_connector_refuses_literals_as_it_connects_and_pools_trusted_ones() -> None:
    """The literal check is the connector's, per connection: a refused literal never
    connects; a trusted one connects once and its pooled connection serves later requests."""
    hits: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    port = server.port
    assert port is not None
    asked: list[tuple[str, int]] = []

    def trusted(host: str, port_: int) -> bool:
        asked.append((host, port_))
        return port_ == port and host == "127.0.0.1"

    connector = GuardedConnector(is_trusted=trusted, resolver=GuardedResolver())
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(BlockedAddressError, match="loopback"):
                await session.get(f"http://[::1]:{port}/v6")
            with pytest.raises(BlockedAddressError, match="private"):
                await session.get("http://10.0.0.1/private")
            # A legacy spelling of 127.0.0.1: refused either way, never connected.
            with pytest.raises((BlockedAddressError, aiohttp.InvalidUrlClientError)):
                await session.get(f"http://0x7f000001:{port}/legacy")
            with pytest.raises(BlockedAddressError, match="loopback"):
                await session.get(f"http://127.0.0.2:{port}/other")
            for _ in range(3):
                async with session.get(f"http://127.0.0.1:{port}/trusted") as response:
                    assert await response.text() == "ok"
        assert hits == ["/trusted"] * 3
        # One connection opened to the trusted literal (checked once), reused after it.
        assert asked.count(("127.0.0.1", port)) == 1
    finally:
        await server.close()
