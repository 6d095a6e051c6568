"""ORM work from async code, in one of two ways (the one helper for it in `engine`):

- `db_call(fn, *args)`: on a pool thread, closing that thread's connections afterwards, so
  none is left open behind (pool threads are many and short-lived to us; tests drop their
  databases). For calls now and then: a run's claim and load, a socket's snapshot.
- `DbThread`: one thread of its own that keeps its connection from call to call, for a
  caller that asks often (a distributed loop's coordinator looks at its chunks every
  KLYNTOS_CHUNK_POLL_SECONDS). Django's connections are per thread, so the thread's
  connection is reused even with CONN_MAX_AGE 0 (nothing here calls
  `close_old_connections`); a call that finds it broken (the database restarted) closes it
  and is tried once more on a new one. `aclose()` closes it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connections

T = TypeVar("T")


def closing_connections(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on this (pool) thread, closing the thread's connections after it."""
    try:
        return fn(*args)
    finally:
        connections.close_all()


async def db_call(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a pool thread, leaving no connection open behind."""
    result: T = await sync_to_async(closing_connections, thread_sensitive=False)(fn, *args)
    return result


class DbThread:
    """A thread whose connection serves every call made through it (module docstring)."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(_again, fn, *args))

    def close(self, timeout: float = 30) -> None:
        """`aclose` from a thread with no loop of this thread's (the loop is gone)."""
        try:
            self._pool.submit(connections.close_all).result(timeout)
        finally:
            self._pool.shutdown(wait=False)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, connections.close_all)
        finally:
            self._pool.shutdown(wait=False)


def _again(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`; once more on a new connection when the kept one turns out broken."""
    try:
        return fn(*args)
    except (InterfaceError, OperationalError):
        if all(conn.connection is None or conn.is_usable() for conn in connections.all()):
            raise  # not a broken connection: the error is the call's own
        connections.close_all()
        return fn(*args)
