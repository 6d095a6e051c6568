"""A request's body leaves with its headers, in the same pass of the event loop.

aiohttp buffers a request's headers to send them with its body, and writes the body from
a task of its own. From Python 3.12 it starts that task eagerly, so a small body goes out
at once; on 3.11 the task first runs on the loop's next pass, so every POST (each LLM call,
each Slack post) waited behind every callback already queued: with ten leads in flight,
3 ms at the median and 12 at the 90th percentile before the request was on the wire,
against under 1 ms for a GET. :class:`EagerBodyRequest` starts the body's writer at once,
as 3.12's eager task does, when the body is bytes aiohttp writes itself: it is written
before ``send`` goes on, or, when the socket makes it wait (a large body, a paused
transport), goes on in aiohttp's task exactly where it stopped. A streamed body, a
100-continue or trace callbacks run code of their own in the writer: that code must run as
the writer's task (a timeout in it would cancel the caller), so those keep aiohttp's task.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine, Generator
from typing import Any

import aiohttp
from aiohttp import payload

__all__ = ["EagerBodyRequest", "started"]


def started(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    """Run `coro` up to its first suspension now; a coroutine that finishes it.

    Awaiting it, or running it as a task, gives what `coro` returns or raises, as if `coro`
    had not been started; only the part before its first wait has already run, as the
    caller's task and in its context (so it must be code that does not depend on either)."""
    try:
        waiting_for = coro.send(None)
    except StopIteration as stop:
        return _finished(stop.value)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 -- raised where the rest is awaited
        return _failed(exc)
    return _Rest(coro, waiting_for)


async def _finished(value: Any) -> Any:
    return value


async def _failed(exc: BaseException) -> Any:
    raise exc


_HANDED: Any = object()


class _Rest(Coroutine[Any, Any, Any]):
    """The rest of a coroutine suspended on `waiting_for`: its first step hands that to the
    task running it, which wakes it once that is done; every later step, and anything
    thrown in (a cancel, even before that first step) or a close, goes to the coroutine
    itself. A coroutine by its ABC, so tasks take it on every Python version."""

    __slots__ = ("_coro", "_waiting_for")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_for: Any) -> None:
        self._coro = coro
        self._waiting_for = waiting_for

    def send(self, value: Any) -> Any:
        waiting_for, self._waiting_for = self._waiting_for, _HANDED
        if waiting_for is not _HANDED:
            return waiting_for
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self._waiting_for = _HANDED  # the coroutine still waits for it: delivered there
        return self._coro.throw(*args)

    def close(self) -> None:
        self._waiting_for = _HANDED
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self  # send, throw, close and __next__: what a generator offers

    def __iter__(self) -> _Rest:
        return self

    def __next__(self) -> Any:
        return self.send(None)


class EagerBodyRequest(aiohttp.ClientRequest):
    """``aiohttp.ClientRequest`` whose body writer starts at once on Python 3.11 when the
    body is bytes (module docstring); on 3.12+ aiohttp does this itself."""

    if sys.version_info < (3, 12):

        def write_bytes(
            self, writer: Any, conn: Any, content_length: int | None = None
        ) -> Coroutine[Any, Any, None]:
            writing = super().write_bytes(writer, conn, content_length)
            if isinstance(self.body, payload.BytesPayload) and not self._writes_own_code():
                return started(writing)
            return writing

        def _writes_own_code(self) -> bool:
            """A 100-continue wait or trace callbacks: code beyond aiohttp's in the writer."""
            return self._continue is not None or bool(self._traces)
