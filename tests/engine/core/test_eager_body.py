"""A request's body goes out with its headers, in the same pass (engine/core/eager_body.py).

The server runs in a thread on a real socket, so the test can hold the event loop still
after each pass and ask whether the whole request has arrived: a body aiohttp writes from a
task of its own arrives one pass after a GET would.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest

from engine.core.eager_body import started
from engine.core.outbound import OutboundConfig, OutboundFactory

# How long a held loop waits, after each pass, for the server thread to have the request
# (generous: on a loaded machine a thread may wait to be scheduled; a pass that sent nothing
# is waited out in full, which only happens when the test is failing).
ARRIVES_WITHIN = 2.0


class ThreadServer:
    """HTTP/1.1 keep-alive on a socket served by threads: records (method, body size) of each
    whole request, and sets `arrived` when one has come in full."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.arrived = threading.Event()
        self.requests: list[tuple[str, int]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn, contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    if not (chunk := conn.recv(1 << 16)):
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    if not (chunk := conn.recv(1 << 16)):
                        return
                    buffer += chunk
                self.requests.append((head.split(b" ", 1)[0].decode(), length))
                buffer = buffer[length:]
                self.arrived.set()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    async def passes_until_arrived(self, send: Callable[[], Coroutine[Any, Any, Any]]) -> int:
        """Passes of the event loop from starting `send` until the server has the whole
        request: after each pass the loop is held still while the server thread looks."""
        self.arrived.clear()
        task = asyncio.create_task(send())
        passes = 0
        while passes < 20:
            await asyncio.sleep(0)
            passes += 1
            if self.arrived.wait(ARRIVES_WITHIN):
                break
        await task
        return passes


@pytest.fixture
def thread_server() -> Iterator[ThreadServer]:
    server = ThreadServer()
    yield server
    server.listener.close()


@pytest.fixture
async def factory(thread_server: ThreadServer) -> AsyncIterator[OutboundFactory]:
    overrides = {"api.example.com": f"http://127.0.0.1:{thread_server.port}"}
    made = OutboundFactory(OutboundConfig(host_overrides=overrides))
    yield made
    await made.aclose()


URL = "https://api.example.com/v1/chat/completions"


async def test_a_post_through_httpx_is_on_the_wire_as_soon_as_a_get_would_be(
    thread_server: ThreadServer, factory: OutboundFactory
) -> None:
    client = factory.httpx_client()  # what the OpenAI SDK sends through
    await client.get(URL)  # a connection kept alive in the pool, as in a loop's steady state
    get = await thread_server.passes_until_arrived(lambda: client.get(URL))
    post = await thread_server.passes_until_arrived(
        lambda: client.post(URL, content=b'{"model": "m"}' * 20)
    )
    assert post == get == 1
    assert thread_server.requests[-1] == ("POST", 280)


async def test_a_post_through_the_shared_session_goes_out_in_its_first_pass(
    thread_server: ThreadServer, factory: OutboundFactory
) -> None:
    session = factory.aiohttp_session()  # what slack_sdk posts through
    url = f"http://127.0.0.1:{thread_server.port}/api/chat.postMessage"
    factory.trust_base_url(url)

    async def post() -> None:
        async with session.post(url, data=b"text=hello") as response:
            assert response.status == 200
            await response.read()

    await post()
    assert await thread_server.passes_until_arrived(post) == 1


async def test_a_body_larger_than_the_socket_takes_goes_on_until_it_is_all_sent(
    thread_server: ThreadServer, factory: OutboundFactory
) -> None:
    client = factory.httpx_client()
    body = b"x" * (8 << 20)  # far past the socket's buffers: the writer has to wait for drain
    answer = await client.post(URL, content=body)
    assert answer.status_code == 200
    assert thread_server.requests[-1] == ("POST", len(body))


# -- started(): the coroutine up to its first wait now, the rest when awaited ---------------


async def test_a_coroutine_that_never_waits_has_finished_when_started_returns() -> None:
    ran: list[str] = []

    async def write() -> str:
        ran.append("written")
        return "done"

    rest = started(write())
    assert ran == ["written"]
    assert await rest == "done"


async def test_an_error_before_the_first_wait_is_raised_where_it_is_awaited() -> None:
    async def fail() -> None:
        raise OSError("broken pipe")

    rest = started(fail())
    with pytest.raises(OSError, match="broken pipe"):
        await rest


async def test_a_coroutine_that_waits_goes_on_in_the_task_that_runs_the_rest() -> None:
    gate = asyncio.get_running_loop().create_future()
    ran: list[str] = []

    async def write() -> str:
        ran.append("first part")
        value = await gate
        ran.append(f"after {value}")
        await asyncio.sleep(0)
        ran.append("after a bare yield")
        return "done"

    task = asyncio.create_task(started(write()))
    assert ran == ["first part"]
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("the drain")
    assert await task == "done"
    assert ran == ["first part", "after the drain", "after a bare yield"]


async def test_a_cancel_while_it_waits_is_delivered_where_the_coroutine_waits() -> None:
    gate = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def write() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise
        finally:
            seen.append("cleaned up")

    task = asyncio.create_task(started(write()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled inside", "cleaned up"]
    assert gate.cancelled()


async def test_a_coroutine_that_handles_what_is_thrown_in_carries_on() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def write() -> str:
        try:
            await gate
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # waits again after handling it
            return "handled"
        return "not thrown"

    task = asyncio.create_task(started(write()))
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "handled"


async def test_an_error_after_the_first_wait_is_raised_from_the_task() -> None:
    async def write() -> None:
        await asyncio.sleep(0)
        raise ConnectionResetError("reset by peer")

    with pytest.raises(ConnectionResetError, match="reset by peer"):
        await asyncio.create_task(started(write()))


async def test_a_cancel_before_the_rest_first_runs_is_delivered_where_it_waits() -> None:
    gate = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def write() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled inside")  # aiohttp's writer closes the connection here
            raise

    task = asyncio.create_task(started(write()))
    task.cancel()  # before the task's first step
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled inside"]


def test_the_rest_closed_unawaited_closes_the_coroutine() -> None:
    closed: list[bool] = []
    loop = asyncio.new_event_loop()
    try:
        gate = loop.create_future()

        async def write() -> None:
            try:
                await gate
            finally:
                closed.append(True)

        coro = write()
        rest = started(coro)
        rest.close()
        assert closed == [True]
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # still referenced here
    finally:
        loop.close()


async def test_a_streamed_body_runs_its_own_code_as_the_writers_task(
    thread_server: ThreadServer, factory: OutboundFactory
) -> None:
    # A timeout inside a streamed body must cancel the body's writer, never the caller: such
    # bodies keep aiohttp's own task.
    session = factory.aiohttp_session()
    url = f"http://127.0.0.1:{thread_server.port}/upload"
    factory.trust_base_url(url)

    async def body() -> AsyncIterator[bytes]:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):  # fires: the task it cancels must be the writer
                await asyncio.sleep(5)
        yield b"x" * 10

    async with session.post(url, data=body(), headers={"Content-Length": "10"}) as response:
        assert response.status == 200
        await response.read()
    assert thread_server.requests[-1] == ("POST", 10)
