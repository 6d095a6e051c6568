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


class DataAccessError(Exception):
    """The data connection is set up in a way that would let workflows escape it."""


class PostgresData:
    """Workflow SQL on PostgreSQL, as a role that can only read and write workflow tables.

    The role must not be a superuser (which could read files or other databases); the
    `leads` migrations create `KLYNTOS_DATA_ROLE` with table privileges only.
    """

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
                try:
                    await _refuse_privileged_role(pool)
                except BaseException:
                    await pool.close()
                    raise
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


async def _refuse_privileged_role(pool: Any) -> None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT current_user, rolsuper OR rolcreaterole OR rolcreatedb "
            "FROM pg_roles WHERE rolname = current_user"
        )
        row = await cursor.fetchone()
    if row is None or row[1]:
        name = row[0] if row else "?"
        raise DataAccessError(
            f"the data connection's role '{name}' may administer the server; "
            "connect database blocks as a role that only has table privileges (KLYNTOS_DATA_ROLE)"
        )


def _now() -> str:
    # The text form Django stores for an aware UTC datetime in SQLite.
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# What a workflow statement may do on the embedded SQLite data file: read and write rows.
# Everything else is refused — above all ATTACH (and VACUUM INTO, which authorizes as an
# ATTACH), which would open the application's own database file.
SQLITE_ALLOWED = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
SQLITE_FORBIDDEN_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


def _sqlite_authorizer(
    action: int, arg1: str | None, arg2: str | None, db: str | None, _: Any
) -> int:
    if action not in SQLITE_ALLOWED:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in SQLITE_FORBIDDEN_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if db not in (None, "main"):
        return sqlite3.SQLITE_DENY
    if action in {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE} and (
        arg1 or ""
    ).startswith("sqlite_"):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


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
            conn.set_authorizer(_sqlite_authorizer)
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
