"""A run store's batches sent from the event loop (engine/loop_connection.py): one round trip
per transaction, all or nothing, a new connection after a failure."""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from engine.loop_connection import LoopConnection
from engine.models import Run
from tests.engine.test_store import new_run

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

RENAME = 'UPDATE "engine_run" SET "error" = %s WHERE "id" = %s'


async def backend(on_loop: LoopConnection) -> int:
    assert on_loop._connection is not None
    return int(on_loop._connection.info.backend_pid)


async def test_a_transaction_is_one_round_trip_and_gives_the_last_row_count(owner: Any) -> None:
    assert connection.vendor == "postgresql"  # the suite's database
    run = await sync_to_async(new_run)(owner, [{"v": 1}])
    on_loop = LoopConnection("default")
    try:
        assert await on_loop.transaction([(RENAME, ["first", run.pk])]) == 1  # connects
        assert on_loop._connection is not None
        pgconn = on_loop._connection.pgconn
        with tempfile.TemporaryFile("w+") as trace:
            pgconn.trace(trace.fileno())  # libpq's log of the protocol's messages
            try:
                count = await on_loop.transaction(
                    [(RENAME, ["second", run.pk]), (RENAME, ["third", "0" * 32])]
                )
            finally:
                pgconn.untrace()
            trace.seek(0)
            messages = trace.read()
        assert count == 0  # the last statement's: no such run
        assert messages.count("ReadyForQuery") == 1, messages  # one wait for the server
        assert (await Run.objects.aget(pk=run.pk)).error == "second"
    finally:
        await on_loop.close()
    assert on_loop._connection is None


async def test_a_failed_statement_rolls_back_everything_and_the_next_gets_a_new_connection(
    owner: Any,
) -> None:
    run = await sync_to_async(new_run)(owner, [{"v": 1}])
    on_loop = LoopConnection("default")
    try:
        await on_loop.transaction([(RENAME, ["kept", run.pk])])
        first = await backend(on_loop)
        with pytest.raises(Exception, match="division by zero"):
            await on_loop.transaction(
                [(RENAME, ["lost", run.pk]), ("SELECT 1 / %s", [0]), (RENAME, ["lost", run.pk])]
            )
        assert on_loop._connection is None  # closed: its transaction ends with it
        assert (await Run.objects.aget(pk=run.pk)).error == "kept"
        assert await on_loop.transaction([(RENAME, ["again", run.pk])]) == 1
        assert await backend(on_loop) != first
        assert (await Run.objects.aget(pk=run.pk)).error == "again"
    finally:
        await on_loop.close()
    await sync_to_async(connections.close_all)()
