"""Real local HTTP servers for the web-facing hostile tests: each records what it received."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Upstream:
    url: str
    received: list[dict[str, str]] = field(default_factory=list)  # headers, one per request
    paths: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def upstream(routes: dict[str, Handler] | None = None) -> AsyncIterator[Upstream]:
    """A server on 127.0.0.1; `routes` maps a path to a handler, anything else answers 200
    with the JSON `{"ok": true}`. Every request's headers and path are recorded first."""
    port = free_port()
    server = Upstream(f"http://127.0.0.1:{port}")
    routes = routes or {}

    async def handle(request: web.Request) -> web.StreamResponse:
        server.received.append(dict(request.headers))
        server.paths.append(request.path)
        handler = routes.get(request.path)
        if handler is not None:
            return await handler(request)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server
    finally:
        await runner.cleanup()
