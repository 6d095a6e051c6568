"""A loop's first calls go out on connections opened while it starts (engine/core/preconnect.py,
OutboundFactory.preconnect).

The target is a tiny HTTP/1.1 keep-alive server on a real socket that logs each connection it
accepts and each request, in order: what was connected ahead shows as accepts with no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.events import Event, EventBus
from engine.core.executor import Executor
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.preconnect import first_call_origins, open_first_connections
from engine.core.redaction import Redactor
from engine.core.services import Services
from tests.engine.core.graphkit import Recorder, block, graph

REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Server:
    port: int = 0
    log: list[tuple[str, int]] = field(default_factory=list)  # ("accept" | path, connection)
    answer: bool = True  # False: accept, then never say a word (a TLS handshake hangs)

    @property
    def accepted(self) -> int:
        return sum(1 for kind, _ in self.log if kind == "accept")

    @property
    def requests(self) -> list[tuple[str, int]]:
        return [entry for entry in self.log if entry[0] != "accept"]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        state.log.append(("accept", number))
        try:
            while state.answer:
                head = await reader.readuntil(b"\r\n\r\n")
                state.log.append((head.split(b" ")[1].decode(), number))
                writer.write(REPLY)
                await writer.drain()
            await reader.read()  # until the client gives up
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield state
        listening.close()


FactoryMaker = Callable[..., OutboundFactory]


@pytest.fixture
async def make_factory(server: Server) -> AsyncIterator[FactoryMaker]:
    """Factories sending api.example.com to the server (`scheme` of the override), closed after."""
    made: list[OutboundFactory] = []

    def make(scheme: str = "http", **config: Any) -> OutboundFactory:
        overrides = {"api.example.com": f"{scheme}://127.0.0.1:{server.port}"}
        made.append(OutboundFactory(OutboundConfig(host_overrides=overrides, **config)))
        return made[-1]

    yield make
    for factory in made:
        with contextlib.suppress(Exception):
            await factory.aclose()


@pytest.fixture
def factory(make_factory: FactoryMaker) -> OutboundFactory:
    return make_factory()


async def test_the_connections_opened_ahead_carry_the_requests_that_follow(
    server: Server, factory: OutboundFactory
) -> None:
    assert await factory.preconnect("https://api.example.com/v1/", 3) == 3
    assert server.accepted == 3 and server.requests == []  # connected, nothing sent
    client = factory.httpx_client()
    answers = await asyncio.gather(
        *(client.get(f"https://api.example.com/v1/item/{i}", timeout=5) for i in range(3))
    )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert server.accepted == 3  # no request opened a connection of its own
    assert sorted(c for _, c in server.requests) == [1, 2, 3]
    # Idle connections already there count: asked again, none is opened.
    assert await factory.preconnect("https://api.example.com/", 3) == 3
    assert server.accepted == 3


async def test_what_the_guard_refuses_is_never_connected(server: Server) -> None:
    factory = OutboundFactory(OutboundConfig(max_connections=2))
    try:
        # Loopback, as a literal and as a name: refused as a request to it would be.
        assert await factory.preconnect(f"http://127.0.0.1:{server.port}/", 2) == 0
        assert await factory.preconnect(f"http://localhost:{server.port}/", 2) == 0
        assert await factory.preconnect("not a url", 2) == 0
        assert server.accepted == 0
    finally:
        await factory.aclose()


async def test_no_more_than_the_session_may_hold_are_opened(
    server: Server, make_factory: FactoryMaker
) -> None:
    factory = make_factory(max_connections=2)
    assert await factory.preconnect("https://api.example.com/", 5) == 2
    assert server.accepted == 2


def _executor(g: dict, services: Services, recorder: Recorder | None = None) -> Executor:
    return Executor(
        parse_graph(g),
        REGISTRY,
        bus=EventBus(recorder or Recorder(), Redactor([])),
        services=services,
    )


def _loop(cap: int, body: list[dict], edges: list[tuple[str, str]] = ()) -> dict:
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=cap),
            *body,
        ],
        [("webhook", "loop"), *edges],
    )


def test_the_origins_are_those_of_the_body_blocks_that_start_each_item() -> None:
    g = _loop(
        10,
        [
            block("ask", "agent", "loop", user_prompt="<item.name>"),
            block("company", "http", "loop", url="https://api.clearbit.com/v2/find?d=<item.d>"),
            block("person", "http", "loop", url="https://user:pw@api.linkedin.com:8443/p"),
            block("anywhere", "http", "loop", url="https://<item.host>/x"),
            block("port", "http", "loop", url="https://api.example.com:<env.PORT>/x"),
            block("merge", "agent", "loop", user_prompt="<ask.content>"),
            block("post", "slack", "loop", channel="#c", text="<merge.content>"),
        ],
        [("ask", "merge"), ("merge", "post")],
    )
    services = Services(outbound=OutboundFactory(), openai_base_url="https://llm.example/v1")
    origins = first_call_origins(_executor(g, services), parse_graph(g).block("loop"))
    # Where a reference decides the host or port, nothing is known ahead; the credentials
    # are never part of an origin; merge and post start after another block of the item.
    assert origins == {
        "https://llm.example/v1": 1,
        "https://api.clearbit.com/": 1,
        "https://api.linkedin.com:8443/": 1,
    }


async def test_a_loop_opens_one_connection_per_first_call_of_its_first_window(
    server: Server, factory: OutboundFactory
) -> None:
    g = _loop(
        4,
        [
            block("a", "http", "loop", url="https://api.example.com/a?i=<item.i>"),
            block("b", "http", "loop", url="https://api.example.com/b?i=<item.i>"),
            block("c", "http", "loop", url="https://api.example.com/c?i=<item.i>"),
        ],
        [("a", "c")],
    )

    class Starts(Recorder):  # item starts, in the server's log as they happen
        def __call__(self, event: Event) -> None:
            if event.type == "item.started":
                server.log.append(("item.started", event.data["index"]))

    executor = _executor(g, Services(outbound=factory), Starts())
    outcome = await executor.run({"items": [{"i": i} for i in range(10)]})
    assert outcome.status == "succeeded"
    assert len([r for r in server.requests if r[0] != "item.started"]) == 30
    # Two first calls per item, four items at once: eight connections, all open before the
    # first item starts, and never one more (c goes out on a connection a or b handed back).
    assert server.log[:9] == [*(("accept", n) for n in range(1, 9)), ("item.started", 0)]
    assert server.accepted == 8


ONE_CALL = _loop(3, [block("a", "http", "loop", url="https://api.example.com/a")])


async def test_a_loop_waits_for_its_connections_no_longer_than_configured(
    server: Server, make_factory: FactoryMaker
) -> None:
    server.answer = False  # TLS: the handshake never completes
    executor = _executor(ONE_CALL, Services(outbound=make_factory("https", preconnect_wait=0.2)))
    started = time.monotonic()
    ready = await open_first_connections(executor, executor.graph.block("loop"), 3)
    waited = time.monotonic() - started
    assert ready == 0 and 0.2 <= waited < 2
    assert server.accepted == 3
    # Nothing left connecting: the three attempts were stopped with the wait.
    await asyncio.sleep(0)
    assert not [
        t for t in asyncio.all_tasks() if "preconnect" in repr(t.get_coro()) and not t.done()
    ]


async def test_no_wait_opens_nothing(server: Server, make_factory: FactoryMaker) -> None:
    executor = _executor(ONE_CALL, Services(outbound=make_factory(preconnect_wait=0)))
    assert await open_first_connections(executor, executor.graph.block("loop"), 3) == 0
    assert server.accepted == 0


async def test_a_workers_chunk_opens_nothing_ahead(
    server: Server, factory: OutboundFactory
) -> None:
    executor = Executor(
        parse_graph(ONE_CALL),
        REGISTRY,
        bus=EventBus(Recorder(), Redactor([])),
        services=Services(outbound=factory),
        item_gate=contextlib.nullcontext(),  # the worker's shared gate
    )
    assert await open_first_connections(executor, executor.graph.block("loop"), 3) == 0
    assert server.accepted == 0
