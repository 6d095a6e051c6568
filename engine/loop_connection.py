"""A run store's own asynchronous PostgreSQL connection, used from the event loop itself.

A loop's body step keeps its permit until its row is stored (engine/core/step_permits.py),
so the time a batch takes to be written is time a waiting step spends idle. Written from
the store's thread, a batch paid a hop to the thread, the thread's Python work while the
busy event loop held the GIL, the wait for the server, the GIL taken back, and a hop back:
~6 ms for a ~2 ms round trip. Sent from the loop, a batch costs its Python work there and
one round trip, during which the loop runs other items.

The statements are the ones the thread sends (Django's compiled SQL and
`engine/upsert.py`'s), with Django's own connection parameters and adapters, through a
client-side binding cursor like Django's. Either way a transaction is one query of several
statements (`one_query`, `last_rowcount`): one round trip, one turn of the loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connections

Statement = tuple[str, Sequence[Any]]
# A statement's row count and the rows it returned (none for a statement that returns none).
Result = tuple[int, list[tuple[Any, ...]]]


def one_query(statements: Sequence[Statement]) -> tuple[str, list[Any]]:
    """`statements` as one query, their values bound by the (client-side binding) cursor:
    PostgreSQL runs a query of several statements (its simple protocol) as one transaction,
    all or nothing, and answers once. A pipeline answered once too, but psycopg yields to the
    loop for each statement it queues: a turn of a busy loop each."""
    return "; ".join(sql for sql, _ in statements), [v for _, params in statements for v in params]


def last_rowcount(cursor: Any) -> int:
    """The row count of the last statement of the query `cursor` executed."""
    count = int(cursor.rowcount)
    while cursor.nextset():
        count = int(cursor.rowcount)
    return count


class LoopConnection:
    """Opened on first use, closed by `close()`; a failed transaction closes it (the server
    rolls back what it had begun) and the next one opens a new connection."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def _connected(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            params = connections[self.alias].get_connection_params()
            params["cursor_factory"] = psycopg.AsyncClientCursor
            # Values are bound as Django binds them (its adapters); datetimes are written
            # with their UTC offset, so the session's time zone does not change them.
            self._connection = await psycopg.AsyncConnection.connect(autocommit=True, **params)
        return self._connection

    async def transaction(self, statements: Sequence[Statement]) -> int:
        """Run `statements` in one transaction and one round trip; the row count of the
        last one."""
        return (await self.results(statements))[-1][0]

    async def results(self, statements: Sequence[Statement]) -> list[Result]:
        """Run `statements` as one query (one round trip); each one's row count and rows. A
        `BEGIN` among them opens a transaction that outlasts the query, until a later query's
        `COMMIT`; a failure closes the connection, and the server rolls the transaction back."""
        connection = await self._connected()
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(*one_query(statements))
                found: list[Result] = []
                while True:
                    rows = await cursor.fetchall() if cursor.description else []
                    found.append((int(cursor.rowcount), rows))
                    if not cursor.nextset():
                        return found
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            with contextlib.suppress(Exception):
                await connection.close()
