"""The data connection: where database blocks run, apart from the application's tables.

PostgreSQL goes through a psycopg async pool (its size caps database concurrency); SQLite
(the embedded default) runs on one connection in a worker thread, one statement at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from engine.core.sqlrefs import Dialect


class DataConnection(Protocol):
    dialect: Dialect

    async def execute(self, sql: str, params: Sequence[Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def _rows(columns: Sequence[str], records: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [{c: _json_safe(v) for c, v in zip(columns, record, strict=True)} for record in records]


class PostgresData:
    dialect: Dialect = "postgresql"

    def __init__(self, conninfo: str, *, max_size: int = 10) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> Any:
        from psycopg_pool import AsyncConnectionPool

        async with self._lock:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self._conninfo, min_size=1, max_size=self._max_size, open=False
                )
                await pool.open()
                self._pool = pool
        return self._pool

    async def execute(self, sql: str, params: Sequence[Any]) -> dict[str, Any]:
        pool = await self._get_pool()
        async with pool.connection() as conn:
            cursor = await conn.execute(sql, list(params))
            rows: list[dict[str, Any]] = []
            if cursor.description:
                columns = [c.name for c in cursor.description]
                rows = _rows(columns, await cursor.fetchall())
            return {"rows": rows, "rowcount": cursor.rowcount}

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _now() -> str:
    # The text form Django stores for an aware UTC datetime in SQLite.
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteData:
    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=30, check_same_thread=False, isolation_level=None
            )
            conn.create_function("NOW", 0, _now)
            # WAL + NORMAL: a commit per item costs a write, not an fsync of the whole file.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any]) -> dict[str, Any]:
        with self._lock:
            cursor = self._connection().execute(sql, list(params))
            rows: list[dict[str, Any]] = []
            if cursor.description:
                rows = _rows([c[0] for c in cursor.description], cursor.fetchall())
            return {"rows": rows, "rowcount": cursor.rowcount}

    async def execute(self, sql: str, params: Sequence[Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self._execute, sql, params)

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
