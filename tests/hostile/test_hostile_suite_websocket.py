"""The run websocket under attack: foreign origins (cross-site websocket hijacking with a
valid session cookie), anonymous sockets, other users' runs under every spelling of their
id, and a client that tries to talk the server into streaming something else.

In process through the real ASGI application (session middleware, Redis channel layer),
and over a real socket against the served app (daphne) for the handshake itself.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from builder import gallery
from builder.services import run_create, workflow_create
from klyntos.asgi import application
from tests.engine.graphs import burst_graph
from tests.hostile.conftest import ServedApp

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

GOOD_ORIGIN = "http://127.0.0.1:8000"
TEMPLATE = "parallel-lead-enrichment"
TIMEOUT = 10.0


def make_run(owner: Any) -> Any:
    workflow = workflow_create(owner=owner, name="live", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": [{"v": 1}]})
    return run


def cookie_of(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def attempt(path: str, *, origin: str | None, cookie: str | None) -> tuple[bool, Any]:
    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    try:
        return await communicator.connect(timeout=TIMEOUT)
    finally:
        await communicator.disconnect()
        await sync_to_async(connections.close_all)()


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://evil.example:8000",
        "https://127.0.0.1.evil.example",
        "http://localhost.evil.example:8000",
        "http://evil.example#@127.0.0.1:8000",
        "http://127.0.0.1:8000@evil.example",
        "null",
        "file://",
        "",
    ],
)
async def test_a_foreign_origin_is_refused_even_with_the_owners_cookie(
    user: Any, origin: str
) -> None:
    """Cross-site websocket hijacking: a page elsewhere opens the socket with the victim's
    cookie attached by the browser. The origin check refuses it before the consumer."""
    run = await sync_to_async(make_run)(user)
    cookie = await sync_to_async(cookie_of)(user)
    connected, _ = await attempt(f"/ws/runs/{run.pk}/", origin=origin, cookie=cookie)
    assert connected is False
    # The same socket from an allowed origin works: the refusal was the origin's doing.
    connected, _ = await attempt(f"/ws/runs/{run.pk}/", origin=GOOD_ORIGIN, cookie=cookie)
    assert connected is True


async def test_a_socket_without_an_origin_header_is_refused(user: Any) -> None:
    run = await sync_to_async(make_run)(user)
    cookie = await sync_to_async(cookie_of)(user)
    connected, _ = await attempt(f"/ws/runs/{run.pk}/", origin=None, cookie=cookie)
    assert connected is False


@pytest.mark.parametrize("cookie", [None, "sessionid=forged-session-key", "sessionid="])
async def test_anonymous_sockets_are_refused_with_4401(user: Any, cookie: str | None) -> None:
    run = await sync_to_async(make_run)(user)
    assert await attempt(f"/ws/runs/{run.pk}/", origin=GOOD_ORIGIN, cookie=cookie) == (
        False,
        4401,
    )


async def test_a_logged_out_session_is_anonymous(user: Any) -> None:
    run = await sync_to_async(make_run)(user)

    def logged_out_cookie() -> str:
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        client.logout()
        return cookie

    cookie = await sync_to_async(logged_out_cookie)()
    assert await attempt(f"/ws/runs/{run.pk}/", origin=GOOD_ORIGIN, cookie=cookie) == (
        False,
        4401,
    )


async def test_another_users_run_is_4404_under_every_spelling_of_its_id(
    user: Any, other_user: Any
) -> None:
    run = await sync_to_async(make_run)(user)
    cookie = await sync_to_async(cookie_of)(other_user)
    spellings = [
        str(run.pk),
        str(run.pk).upper(),
        run.pk.hex,
        "{" + str(run.pk) + "}",
        f"urn:uuid:{run.pk}",
        str(uuid.uuid4()),  # exists nowhere: looks the same
        "not-a-uuid",
        "1 OR 1=1",
        "%00",
    ]
    for spelling in spellings:
        answer = await attempt(f"/ws/runs/{spelling}/", origin=GOOD_ORIGIN, cookie=cookie)
        assert answer == (False, 4404), spelling
    # ... and the owner is let in.
    owner_cookie = await sync_to_async(cookie_of)(user)
    connected, _ = await attempt(f"/ws/runs/{run.pk}/", origin=GOOD_ORIGIN, cookie=owner_cookie)
    assert connected is True


async def test_what_the_client_sends_cannot_switch_the_stream(user: Any, other_user: Any) -> None:
    mine = await sync_to_async(make_run)(other_user)
    theirs = await sync_to_async(make_run)(user)
    cookie = await sync_to_async(cookie_of)(other_user)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/runs/{mine.pk}/",
        headers=[(b"origin", GOOD_ORIGIN.encode()), (b"cookie", cookie.encode())],
    )
    try:
        assert (await communicator.connect(timeout=TIMEOUT))[0]
        first = await communicator.receive_json_from(timeout=TIMEOUT)
        assert first["run"]["id"] == str(mine.pk)
        for message in [
            {"type": "subscribe", "run_id": str(theirs.pk)},
            {"type": "run.delta", "run": str(theirs.pk)},
            {"type": "websocket.disconnect"},
        ]:
            await communicator.send_json_to(message)
        assert await communicator.receive_nothing(timeout=0.5)
    finally:
        await communicator.disconnect()
        await sync_to_async(connections.close_all)()


# --- the handshake on the served app (daphne) ----------------------------------------------


def handshake(app: ServedApp, path: str, origin: str | None, cookie: str | None) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{app.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


@pytest.mark.django_db(transaction=False)
def test_served_app_refuses_cross_site_and_anonymous_handshakes(served_app: ServedApp) -> None:
    """Daphne turns a socket closed before it is accepted into a 403 handshake answer."""
    workflow = served_app.client.get("/api/workflows/").json()[0]
    started = served_app.client.post(
        f"/api/workflows/{workflow['id']}/runs/",
        json={"input": {"leads": gallery.template_get(TEMPLATE)["sample"]["leads"][:2]}},
        headers={"X-CSRFToken": served_app.client.cookies["csrftoken"]},
    )
    assert started.status_code == 201, started.text
    path = f"/ws/runs/{started.json()['id']}/"
    cookie = f"sessionid={served_app.client.cookies['sessionid']}"
    own = served_app.base_url
    assert handshake(served_app, path, "http://evil.example", cookie) == 403
    assert handshake(served_app, path, None, cookie) == 403
    assert handshake(served_app, path, own, None) == 403
    assert handshake(served_app, path, own, "sessionid=forged") == 403
    assert handshake(served_app, f"/ws/runs/{uuid.uuid4()}/", own, cookie) == 403
    assert handshake(served_app, path, own, cookie) == 101
