"""BodyLimitMiddleware in process, then through real daphne processes over real sockets.

Two servers run the echo app of tests/klyntos/asgi_echo.py behind
BodyLimitMiddleware(max_bytes=1024): "guarded" also installs the daphne-level guard,
"plain" has the ASGI middleware only, to pin down what each layer does on daphne.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from klyntos.body_limit import BodyLimitMiddleware, Message, Receive, Scope, Send

MAX = 1024
TOO_LARGE = {"error": "request body is larger than 1024 bytes"}
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- in process ----------------------------------------------------------------------------


@dataclass
class Recorder:
    """Inner app that records its calls and what it received."""

    calls: int = 0
    messages: list[Message] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        self.messages = [await receive()]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def http_scope(path: str = "/hooks/abc", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or []}


class Feed:
    """A `receive` that serves queued messages and counts how many were pulled."""

    def __init__(self, messages: list[Message], *, endless_chunk: bytes | None = None) -> None:
        self.messages = list(messages)
        self.endless_chunk = endless_chunk
        self.pulled = 0

    async def __call__(self) -> Message:
        self.pulled += 1
        if self.messages:
            return self.messages.pop(0)
        if self.endless_chunk is not None:
            return {"type": "http.request", "body": self.endless_chunk, "more_body": True}
        return {"type": "http.disconnect"}


async def run(app: Any, scope: Scope, receive: Receive) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return sent


def assert_json_error(sent: list[Message], status: int, error: dict[str, str]) -> None:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == status
    headers = dict(sent[0]["headers"])
    body = sent[1]["body"]
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"connection"] == b"close"
    assert json.loads(body) == error
    assert sent[1].get("more_body", False) is False


async def test_body_in_chunks_is_replayed_as_one_message_then_disconnect_delegates() -> None:
    feed = Feed(
        [
            {"type": "http.request", "body": b"a" * 600, "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"b" * 424, "more_body": False},
        ]
    )
    replay: list[Message] = []

    async def app_reading_twice(scope: Scope, receive: Receive, send: Send) -> None:
        replay.extend([await receive(), await receive()])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BodyLimitMiddleware(app_reading_twice, max_bytes=MAX)
    sent = await run(app, http_scope(), feed)
    assert sent[0]["status"] == 200
    assert replay[0] == {
        "type": "http.request",
        "body": b"a" * 600 + b"b" * 424,
        "more_body": False,
    }
    assert replay[1] == {"type": "http.disconnect"}  # from the original receive
    assert feed.pulled == 4


async def test_exactly_max_bytes_passes_and_one_more_is_413_without_calling_the_app() -> None:
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    sent = await run(app, http_scope(), Feed([{"type": "http.request", "body": b"x" * MAX}]))
    assert sent[0]["status"] == 200 and inner.calls == 1
    assert inner.messages == [{"type": "http.request", "body": b"x" * MAX, "more_body": False}]

    sent = await run(app, http_scope(), Feed([{"type": "http.request", "body": b"x" * (MAX + 1)}]))
    assert_json_error(sent, 413, TOO_LARGE)
    assert inner.calls == 1


async def test_oversized_content_length_is_413_without_reading_the_body() -> None:
    inner = Recorder()

    async def must_not_receive() -> Message:
        raise AssertionError("the body must not be read")

    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    scope = http_scope(headers=[(b"host", b"x"), (b"content-length", b"10000000")])
    assert_json_error(await run(app, scope, must_not_receive), 413, TOO_LARGE)
    assert inner.calls == 0


async def test_declared_length_within_limit_is_still_counted() -> None:
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    scope = http_scope(headers=[(b"content-length", b"10")])
    feed = Feed([{"type": "http.request", "body": b"x" * 2000}])
    assert_json_error(await run(app, scope, feed), 413, TOO_LARGE)
    assert inner.calls == 0


@pytest.mark.parametrize(
    "values",
    [[b"abc"], [b"-1"], [b"+5"], [b"1.5"], [b""], [b"12x"], [b"0x10"], [b"10", b"11"]],
    ids=["letters", "negative", "plus", "decimal", "empty", "suffix", "hex", "conflicting"],
)
async def test_invalid_content_length_is_400(values: list[bytes]) -> None:
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    scope = http_scope(headers=[(b"Content-Length", v) for v in values])
    sent = await run(app, scope, Feed([]))
    assert_json_error(sent, 400, {"error": "invalid Content-Length header"})
    assert inner.calls == 0


async def test_repeated_identical_content_length_is_accepted() -> None:
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    scope = http_scope(headers=[(b"content-length", b"3"), (b"content-length", b" 3 ")])
    sent = await run(app, scope, Feed([{"type": "http.request", "body": b"abc"}]))
    assert sent[0]["status"] == 200 and inner.calls == 1


async def test_streamed_body_stops_being_read_as_soon_as_it_passes_the_limit() -> None:
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    feed = Feed([], endless_chunk=b"z" * 300)  # never ends on its own
    assert_json_error(await run(app, http_scope(), feed), 413, TOO_LARGE)
    assert feed.pulled == 4  # 1200 > 1024 after the 4th chunk; nothing more read
    assert inner.calls == 0


async def test_client_disconnect_mid_body_stops_quietly() -> None:
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    feed = Feed([{"type": "http.request", "body": b"a" * 10, "more_body": True}])
    assert await run(app, http_scope(), feed) == []
    assert inner.calls == 0


@pytest.mark.parametrize(
    "scope",
    [
        http_scope(path="/api/upload", headers=[(b"content-length", b"10000000")]),
        http_scope(path="/hooks", headers=[(b"content-length", b"abc")]),  # prefix is "/hooks/"
        {"type": "websocket", "path": "/hooks/ws", "headers": []},
        {"type": "lifespan"},
    ],
    ids=["other-path", "prefix-needs-slash", "websocket", "lifespan"],
)
async def test_other_scopes_pass_straight_through(scope: Scope) -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    feed = Feed([])
    app = BodyLimitMiddleware(inner, max_bytes=MAX)
    assert await run(app, scope, feed) == []
    assert len(seen) == 1 and seen[0][0] is scope and seen[0][1] is feed
    assert feed.pulled == 0


async def test_custom_prefixes() -> None:
    inner = Recorder()
    app = BodyLimitMiddleware(inner, max_bytes=4, path_prefixes=("/a/", "/b/"))
    for path in ("/a/1", "/b/2"):
        sent = await run(
            app, http_scope(path=path), Feed([{"type": "http.request", "body": b"12345"}])
        )
        assert_json_error(sent, 413, {"error": "request body is larger than 4 bytes"})
    sent = await run(
        app, http_scope(path="/c/3"), Feed([{"type": "http.request", "body": b"12345"}])
    )
    assert sent[0]["status"] == 200


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        BodyLimitMiddleware(Recorder(), max_bytes=-1)
    with pytest.raises(TypeError):
        BodyLimitMiddleware(Recorder(), max_bytes=1, path_prefixes="/hooks/")  # type: ignore[arg-type]


# --- real daphne ---------------------------------------------------------------------------


@dataclass
class Daphne:
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


LISTENING = re.compile(rb"Listening on TCP address 127\.0\.0\.1:(\d+)")


def start_daphne(log: Path, *, guard: bool) -> Daphne:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["KLYNTOS_ECHO_DAPHNE_GUARD"] = "1" if guard else "0"
    with log.open("wb") as out:
        # Port 0 and read the real one from daphne's log: no race for a "free" port.
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0"]
            + ["tests.klyntos.asgi_echo:application"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Daphne(process, log)


def wait_ready(server: Daphne, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"daphne exited early:\n{server.log.read_text()}")
        found = LISTENING.search(server.log.read_bytes())
        if found:
            server.port = int(found.group(1))
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            return
        time.sleep(0.05)
    pytest.fail(f"daphne did not listen within the deadline:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Daphne]]:
    logs = tmp_path_factory.mktemp("daphne")
    started: dict[str, Daphne] = {}
    try:
        # Both start in parallel: one startup cost for the module.
        started["guarded"] = start_daphne(logs / "guarded.log", guard=True)
        started["plain"] = start_daphne(logs / "plain.log", guard=False)
        deadline = time.monotonic() + 15
        for server in started.values():
            wait_ready(server, deadline)
        yield started
    finally:
        for server in started.values():
            server.process.terminate()
        for server in started.values():
            try:
                server.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=5)


@pytest.fixture
def guarded(servers: dict[str, Daphne]) -> Daphne:
    return servers["guarded"]


@pytest.fixture
def plain(servers: dict[str, Daphne]) -> Daphne:
    return servers["plain"]


def post(url: str, content: bytes | Iterator[bytes]) -> httpx.Response:
    # trust_env=False: a proxy from the environment must never see 127.0.0.1 traffic.
    return httpx.post(url, content=content, timeout=5, trust_env=False)


def app_calls(server: Daphne) -> int:
    return int(httpx.get(f"{server.url}/stats", timeout=5, trust_env=False).json()["calls"])


def connect(server: Daphne, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response framed by Content-Length (or by EOF)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {
        k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)
    }
    if "content-length" in headers:
        while len(body) < int(headers["content-length"]):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, headers, body


def assert_closed_by_server(sock: socket.socket) -> None:
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass  # also closed; what matters is that the 413 was readable first


def test_small_hook_body_is_echoed(guarded: Daphne, plain: Daphne) -> None:
    for server in (guarded, plain):
        response = post(f"{server.url}/hooks/echo", b"hello")
        assert response.status_code == 200
        assert response.json() == {"length": 5}
        response = post(f"{server.url}/hooks/echo", b"x" * MAX)
        assert response.json() == {"length": MAX}


def test_huge_content_length_gets_413_before_any_body_is_sent(guarded: Daphne) -> None:
    before = app_calls(guarded)
    with connect(guarded, timeout=3) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        status, headers, body = read_response(sock)  # the body is never sent
        elapsed = time.monotonic() - started
        assert status == 413
        assert json.loads(body) == TOO_LARGE
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        assert elapsed < 2.0  # the socket timeout is 3 s; daphne alone never answers
        assert_closed_by_server(sock)
    assert app_calls(guarded) == before


def test_percent_encoded_and_query_string_hook_paths_are_limited_too(guarded: Daphne) -> None:
    for target in (b"/%68ooks/echo", b"/hooks/echo?x=1"):
        with connect(guarded, timeout=2) as sock:
            sock.sendall(
                b"POST " + target + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"
            )
            assert read_response(sock)[0] == 413


def test_expect_100_continue_gets_the_413_instead_of_continue(guarded: Daphne) -> None:
    with connect(guarded, timeout=2) as sock:
        sock.sendall(
            b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        status, _, body = read_response(sock)
        assert status == 413 and json.loads(body) == TOO_LARGE
        assert_closed_by_server(sock)  # in particular no "100 Continue" after it
    with connect(guarded, timeout=2) as sock:  # a body that fits still gets the go-ahead
        sock.sendall(
            b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"abc")
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body) == {"length": 3}


def test_chunked_upload_is_cut_off_mid_stream(guarded: Daphne) -> None:
    before = app_calls(guarded)
    piece = b"c" * 128
    with connect(guarded, timeout=3) as sock:
        sock.sendall(b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        answered_after: int | None = None
        # The client always has more to send (no final chunk); it looks for an answer
        # between chunks, patiently once the limit is passed so a slow host can't flake.
        while sent <= MAX + 4 * len(piece):
            sock.sendall(b"80\r\n" + piece + b"\r\n")
            sent += len(piece)
            readable, _, _ = select.select([sock], [], [], 2.0 if sent > MAX else 0.01)
            if readable:
                answered_after = sent
                break
        assert answered_after is not None, "no response while the upload was still going"
        assert answered_after == 9 * len(piece)  # the first chunk that passes 1024 bytes
        status, headers, body = read_response(sock)
        assert status == 413 and json.loads(body) == TOO_LARGE
        assert headers["connection"] == "close"
        assert_closed_by_server(sock)
    assert app_calls(guarded) == before


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n" + b"x" * 3000,
        b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"7d0\r\n"
        + b"x" * 2000
        + b"\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_oversized_body_arriving_in_one_read_never_reaches_the_app(
    guarded: Daphne, request_bytes: bytes
) -> None:
    # The whole body (and a pipelined request) lands in the same read as the refusal.
    before = app_calls(guarded)
    with connect(guarded, timeout=2) as sock:
        sock.sendall(request_bytes + b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 413 and json.loads(body) == TOO_LARGE
        assert_closed_by_server(sock)  # the pipelined request is dropped, not answered
    assert app_calls(guarded) == before


def test_non_hook_path_with_big_body_passes_through(guarded: Daphne, plain: Daphne) -> None:
    for server in (guarded, plain):
        response = post(f"{server.url}/echo", b"y" * 200_000)
        assert response.status_code == 200
        assert response.json() == {"length": 200_000}

        def chunks() -> Iterator[bytes]:  # httpx sends an iterator chunked
            for _ in range(50):
                yield b"y" * 1000

        response = post(f"{server.url}/echo", chunks())
        assert response.json() == {"length": 50_000}


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1.5"])
def test_daphne_refuses_invalid_content_length(guarded: Daphne, value: bytes) -> None:
    # On daphne, Twisted refuses these itself, before either of our layers runs.
    before = app_calls(guarded)
    with connect(guarded, timeout=2) as sock:
        sock.sendall(
            b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + value + b"\r\n\r\n"
        )
        assert read_response(sock)[0] == 400
    assert app_calls(guarded) == before


def test_plain_daphne_only_calls_the_app_after_the_whole_body_arrived(plain: Daphne) -> None:
    # Why the daphne guard exists: without it nothing answers while the body is pending.
    with connect(plain, timeout=0.5) as sock:
        sock.sendall(b"POST /hooks/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_plain_daphne_still_gets_413_from_the_middleware_once_buffered(plain: Daphne) -> None:
    before = app_calls(plain)
    response = post(f"{plain.url}/hooks/echo", b"x" * (MAX + 1))
    assert response.status_code == 413
    assert response.json() == TOO_LARGE

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 200

    response = post(f"{plain.url}/hooks/echo", chunks())
    assert response.status_code == 413
    assert app_calls(plain) == before
