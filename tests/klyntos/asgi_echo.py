"""Tiny ASGI app served by a real daphne in tests/klyntos/test_body_limit.py.

`POST /hooks/...` and `POST /echo` answer `{"length": <body bytes>}`; `GET /stats` answers
`{"calls": n}` with the number of times the inner app handled a request other than
/stats, so a test can prove a rejected request never reached it.
`KLYNTOS_ECHO_DAPHNE_GUARD=1` also installs the daphne-level guard.
"""

from __future__ import annotations

import json
import os

from klyntos.body_limit import (
    BodyLimitMiddleware,
    Message,
    Receive,
    Scope,
    Send,
    install_daphne_body_limit,
)

MAX_BYTES = 1024
calls = 0


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    global calls
    if scope["type"] != "http":
        return
    if scope["path"] == "/stats":
        payload: dict[str, int] = {"calls": calls}
    else:
        calls += 1
        length = 0
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return
            length += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        payload = {"length": length}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


application = BodyLimitMiddleware(echo, max_bytes=MAX_BYTES)

if os.environ.get("KLYNTOS_ECHO_DAPHNE_GUARD") == "1":
    install_daphne_body_limit(max_bytes=MAX_BYTES)
