"""Requests through the real ASGI application (`klyntos.asgi.application`), where waiting
requests get their answer (builder/waiting.py); Django's test client never goes there."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import HttpCommunicator
from django.db import connections


async def asgi_post(path: str, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from klyntos.asgi import application

    raw = json.dumps(body).encode()
    pairs = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    pairs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    communicator = HttpCommunicator(application, "POST", path, body=raw, headers=pairs)
    response = await communicator.get_response(timeout=45)  # past the longest wait (30 s)
    response["headers"] = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    response["json"] = json.loads(response["body"]) if response["body"] else None
    return response


def post(path: str, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async def call() -> dict[str, Any]:
        try:
            return await asgi_post(path, body, headers)
        finally:
            await sync_to_async(connections.close_all)()

    return async_to_sync(call)()
