"""Request bodies are read the same way whatever their framing (issue 12.2).

Against the real served app (`run_local`: daphne, as `make run`), over raw sockets: a body
sent with `Transfer-Encoding: chunked` (no Content-Length) reaches the view whole, a chunked
body over the limit answers 413 while it is still arriving, and an empty body where one is
required answers 400 instead of creating a default object.
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.hostile.web_served import Session, served

REQUEST_MAX = 10 * 1024 * 1024  # KLYNTOS_REQUEST_MAX_BYTES' default
WEBHOOK_MAX = 1024 * 1024  # KLYNTOS_WEBHOOK_MAX_BYTES' default


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    with served(tmp_path_factory.mktemp("chunked")) as signed_in:
        yield signed_in


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    while length and len(body) < int(length[1]):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def send_chunked(
    session: Session, path: str, pieces: Iterator[bytes], *, auth: bool = True
) -> tuple[int, Any, int]:
    """POST `pieces` chunked (no Content-Length); stops sending as soon as the server
    answers. Returns (status, parsed body, bytes sent before the answer)."""
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{session.port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        "Connection: close",
    ]
    if auth:
        head += [f"Cookie: {session.cookie}", f"X-CSRFToken: {session.csrf}"]
    sent = 0
    with socket.create_connection(("127.0.0.1", session.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answered = False
        for piece in pieces:
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += len(piece)
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
        if not answered:
            sock.sendall(b"0\r\n\r\n")
        status, body = read_response(sock)
    return status, json.loads(body) if body else None, sent


def pieces_of(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def endless(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    """`total` bytes of one JSON object's text, never closed."""
    yield b'{"name": "big", "description": "'
    for _ in range(total // size):
        yield b"x" * size


def test_a_chunked_500kb_body_creates_the_workflow_with_that_body(session: Session) -> None:
    description = "d" * (500 * 1024)
    body = json.dumps({"name": "chunked upload", "description": description}).encode()
    status, created, _ = send_chunked(session, "/api/workflows/", pieces_of(body))
    assert status == 201, created
    stored = session.client.get(f"/api/workflows/{created['id']}/").json()
    assert stored["name"] == "chunked upload" and stored["description"] == description


def test_a_chunked_50mb_body_answers_413_while_still_arriving(session: Session) -> None:
    before = len(session.client.get("/api/workflows/").json())
    status, error, sent = send_chunked(session, "/api/workflows/", endless(50 * 1024 * 1024))
    assert status == 413 and error == {
        "error": f"request body is larger than {REQUEST_MAX} bytes (KLYNTOS_REQUEST_MAX_BYTES)"
    }
    assert sent < 50 * 1024 * 1024  # answered before the client had sent everything
    assert len(session.client.get("/api/workflows/").json()) == before


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_an_empty_body_answers_400_not_a_default_workflow(session: Session, framing: str) -> None:
    before = len(session.client.get("/api/workflows/").json())
    if framing == "chunked":
        status, error, _ = send_chunked(session, "/api/workflows/", iter(()))
    else:
        response = session.client.post(
            "/api/workflows/", content=b"", headers={"Content-Type": "application/json"}
        )
        status, error = response.status_code, response.json()
    assert status == 400 and "body is required" in json.dumps(error), error
    assert len(session.client.get("/api/workflows/").json()) == before


def test_a_declared_body_over_the_limit_gets_the_same_413(session: Session) -> None:
    with socket.create_connection(("127.0.0.1", session.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /api/workflows/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session.cookie}\r\n"
                f"X-CSRFToken: {session.csrf}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {REQUEST_MAX + 1}\r\n\r\n"
            ).encode()
        )
        status, body = read_response(sock)
    assert status == 413 and json.loads(body)["error"].endswith(
        f"{REQUEST_MAX} bytes (KLYNTOS_REQUEST_MAX_BYTES)"
    )


def hook_path(session: Session) -> str:
    graph = {
        "blocks": [{"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}],
        "edges": [],
    }
    created = session.client.post("/api/workflows/", json={"name": "hook", "graph": graph})
    assert created.status_code == 201, created.text
    return httpx.URL(created.json()["webhook_url"]).path


def wait_for_run(session: Session, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run = session.client.get(f"/api/runs/{run_id}/").json()
        if run["finished_at"] or time.monotonic() > deadline:
            return dict(run)
        time.sleep(0.2)


def test_webhook_bodies_are_read_whatever_their_framing(session: Session) -> None:
    path = hook_path(session)
    payload = {"leads": [{"name": "n" * 1000, "i": i} for i in range(400)]}  # ~420 KB
    body = json.dumps(payload).encode()
    status, answer, _ = send_chunked(session, path, pieces_of(body), auth=False)
    assert status == 202, answer
    run = wait_for_run(session, answer["run_id"])
    assert run["status"] == "succeeded", run
    assert run["outputs"]["webhook"]["body"] == payload

    status, error, _ = send_chunked(session, path, endless(5 * WEBHOOK_MAX), auth=False)
    assert status == 413 and error["error"].endswith(
        f"{WEBHOOK_MAX} bytes (KLYNTOS_WEBHOOK_MAX_BYTES)"
    )
    status, error, _ = send_chunked(session, path, iter(()), auth=False)
    assert status == 400 and error == {"error": "empty request body"}
