"""The HTTP block's requests (engine/core/fetch.py) and the hops they take (OutboundFactory.hop).

Real sockets only: the target is an aiohttp.web server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine.core.errors import BlockError
from engine.core.fetch import fetch
from engine.core.outbound import BlockedAddressError, OutboundConfig, OutboundFactory

BIG = b"x" * 50_000


async def _answer(request: web.Request) -> web.StreamResponse:
    if request.path.endswith("/gzip"):  # 50 KB once decompressed, a few dozen bytes as sent
        return web.Response(body=gzip.compress(BIG), headers={"Content-Encoding": "gzip"})
    if request.path.endswith("/chunked"):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(5):
            await response.write(BIG[:10_000])
        await response.write_eof()
        return response
    if request.path.endswith("/big"):
        return web.Response(body=BIG)
    return web.json_response({"path": request.raw_path, "host": request.host})


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def factory(server: TestServer) -> AsyncIterator[OutboundFactory]:
    made = OutboundFactory(
        OutboundConfig(host_overrides={"api.example": f"http://127.0.0.1:{server.port}/base/"})
    )
    yield made
    await made.aclose()


URLS = [
    "https://api.example/v1/find?domain=a.com",
    "https://api.example/v1/find?domain=b.com&x=%2F#frag",
    "https://api.example",
    "https://api.example?q=1",
    "https://api.example#top",
    "https://api.example/a?",  # an empty query: splitting and joining drops it
    "https://api.example/a#",
    "https://api.example/a?#f",
    "https://api.example/a b ",  # a trailing space: splitting drops it
    "https://api.example/a\tb",  # a tab: splitting drops it
    "https://API.Example:443/v1/x",
    "https://elsewhere.example/v1/x?y=1",
]


async def test_a_hop_is_where_route_goes_first_time_and_remembered(
    factory: OutboundFactory,
) -> None:
    for _ in range(2):  # the second time from what the first remembered
        for url in URLS:
            target, overridden = await factory.route(url)
            hop = await factory.hop(url)
            assert hop.url == target, url
            assert (hop.host_header is not None) == overridden, url
            assert (
                hop.host
                == url.split("//", 1)[1]
                .split("/")[0]
                .split(":")[0]
                .split("?")[0]
                .split("#")[0]
                .lower()
            ), url


async def test_an_override_target_named_directly_is_checked_on_every_hop(
    factory: OutboundFactory, server: TestServer
) -> None:
    for _ in range(2):
        with pytest.raises(BlockedAddressError):
            await factory.hop(f"http://127.0.0.1:{server.port}/direct")


async def test_fetch_reaches_the_override_target_with_its_host_and_path(
    factory: OutboundFactory, server: TestServer
) -> None:
    for domain in ("a.com", "b.com"):
        result = await fetch(
            factory, "GET", f"https://api.example/v1/find?domain={domain}", max_bytes=10_000
        )
        assert result.status == 200
        assert result.body == (
            b'{"path": "/base/v1/find?domain='
            + domain.encode()
            + b'", "host": "127.0.0.1:'
            + str(server.port).encode()
            + b'"}'
        )


@pytest.mark.parametrize("path", ["/gzip", "/chunked", "/big"])
async def test_a_body_past_the_limit_fails_however_it_is_sent(
    factory: OutboundFactory, path: str
) -> None:
    with pytest.raises(BlockError, match="response larger than 40000 bytes"):
        await fetch(factory, "GET", f"https://api.example{path}", max_bytes=40_000)
    result = await fetch(factory, "GET", f"https://api.example{path}", max_bytes=60_000)
    assert result.body == BIG
