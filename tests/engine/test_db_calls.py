"""ORM work from async code (engine/db_calls.py): `db_call` leaves no connection behind; a
`DbThread` keeps one connection from call to call, and takes a new one when it broke."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.db import connection

from engine.db_calls import DbThread, db_call

pytestmark = pytest.mark.django_db(transaction=True)


def backend() -> tuple[int, str]:
    """This thread's database session (its server process) and the thread's name."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return pid, threading.current_thread().name


def opened() -> bool:
    return connection.connection is not None


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def needs_postgresql() -> None:
    if not django_settings.ON_POSTGRESQL:
        pytest.fail("these sessions are PostgreSQL's (DATABASE_URL)")


def test_a_db_thread_keeps_its_connection_and_replaces_a_broken_one() -> None:
    needs_postgresql()

    async def scenario() -> list[Any]:
        thread = DbThread("test-look")
        try:
            first = await thread.call(backend)
            second = await thread.call(backend)
            await db_call(terminate, first[0])  # the server ends the kept session
            third = await thread.call(backend)  # tried again on a new connection
            fourth = await thread.call(backend)
            kept_open = await thread.call(opened)
        finally:
            await thread.aclose()
        return [first, second, third, fourth, kept_open]

    first, second, third, fourth, kept_open = async_to_sync(scenario)()
    assert first == second  # the same session, on the same thread
    assert third[0] != first[0] and third == fourth
    assert first[1].startswith("test-look")
    assert kept_open


def test_db_call_leaves_no_connection_open_behind() -> None:
    needs_postgresql()

    def open_then_report() -> tuple[int, str]:
        return backend()

    async def scenario() -> list[bool]:
        pid, name = await db_call(open_then_report)
        assert pid > 0
        # Whichever pool thread ran it, none of the pool's threads holds a connection now.
        return [await db_call(opened) for _ in range(5)]

    assert async_to_sync(scenario)() == [False] * 5


def test_a_db_thread_closed_with_no_loop_leaves_no_session_behind() -> None:
    """The executor's claims thread, closed after its loop is gone (close_data_pools)."""
    needs_postgresql()
    thread = DbThread("test-close")
    pid, _ = async_to_sync(thread.call)(backend)
    thread.close()
    deadline = time.monotonic() + 5  # a backend leaves pg_stat_activity once it has exited
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            left = cursor.fetchone()[0]
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == 0
