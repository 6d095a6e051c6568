"""The data connection: where database blocks run, apart from the application's tables.

PostgreSQL goes through a psycopg async pool (its size caps database concurrency); SQLite
(the embedded default) runs on one connection owned by one dedicated worker thread, one
statement at a time. Neither ever makes the event loop wait: a statement whose caller gave up
(a block timeout, a cancelled run) is stopped in the database itself — PostgreSQL by psycopg's
cancel request, SQLite by `interrupt()` plus a progress handler — and closing never waits on
the worker on the loop thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import functools
import math
import re
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from engine.core.errors import SizeLimitError
from engine.core.sizes import BLOCK_OUTPUT, SizeMeter
from engine.core.sqlrefs import Dialect


class DataConnection(Protocol):
    dialect: Dialect

    async def execute(
        self, sql: str, params: Sequence[Any], *, max_bytes: int | None = None
    ) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


# Integers up to this many digits stay numbers; longer ones (numeric(1000)) are kept exact as
# text, and Python refuses to print ints past 4,300 digits anyway.
MAX_INTEGER_DIGITS = 18


def json_safe(value: Any) -> Any:
    """Any value a driver returns as something JSON (and PostgreSQL's jsonb) can hold.

    Exact where JSON can be exact; everything else — including types nobody listed — as text,
    so that a query result can always be stored and a run always ends."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    if isinstance(value, decimal.Decimal):
        return _decimal(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    # uuid, ipaddress (inet/cidr), psycopg ranges, timedelta, anything new: its text form.
    return str(value)


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _decimal(value: decimal.Decimal) -> Any:
    if not value.is_finite():
        return str(value)  # NaN, Infinity, -Infinity
    if value == value.to_integral_value():
        return int(value) if value.adjusted() < MAX_INTEGER_DIGITS else format(value, "f")
    as_float = float(value)
    return as_float if decimal.Decimal(repr(as_float)) == value else str(value)


def _raw_size(value: Any) -> int:
    """At most the JSON size of a driver's value once converted, for the two kinds that can be
    large (text: its characters, each at least a byte; bytes: their hex); 0 for the rest."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, bytes | bytearray | memoryview):
        return 2 * len(value) + 2
    return 0


class _Rows:
    """A result's rows as they are read, their JSON size counted against the block's output
    limit (`max_bytes`; None: unbounded), so a result past it fails with the executor's own
    message (`SizeLimitError`, "the block's output is larger than …") as soon as the row
    that crosses it arrives, not after the whole result sat in memory."""

    __slots__ = ("columns", "rows", "size", "_meter")

    def __init__(self, columns: Sequence[str], max_bytes: int | None) -> None:
        self.columns = columns
        self.rows: list[dict[str, Any]] = []
        # The output's frame: {"rows": [...], "rowcount": n}.
        self.size = len('{"rows":[],"rowcount":}') + 20
        self._meter = SizeMeter(max_bytes, BLOCK_OUTPUT) if max_bytes is not None else None

    def add(self, record: Sequence[Any]) -> None:
        meter = self._meter
        if meter is not None:
            # Long text and bytes weighed before they are converted (bytes become hex: twice
            # their size), so a row that cannot fit is never copied.
            raw = sum(_raw_size(v) for v in record)
            if self.size + raw > meter.limit:
                raise SizeLimitError(BLOCK_OUTPUT, meter.limit)
        row = {c: json_safe(v) for c, v in zip(self.columns, record, strict=True)}
        if meter is not None:
            self.size += meter.measure(row) + 1
            if self.size > meter.limit:
                raise SizeLimitError(BLOCK_OUTPUT, meter.limit)
        self.rows.append(row)


class DataAccessError(Exception):
    """The data connection is set up in a way that would let workflows escape it."""


# A view in the data database showing the connected role's own attributes (pg_roles itself
# is closed to workflow roles); `leads/owner_data.py` creates it and grants it to them.
ROLE_ATTRIBUTES_VIEW = "klyntos_meta.role_attributes"


# The server-side bound of one statement: the longest timeout a block may set (the `timeout`
# maximum in engine/blocks/base.py); each block's own timeout is enforced by cancelling.
STATEMENT_BOUND = 3600.0


class PostgresData:
    """Workflow SQL on PostgreSQL, as a role that can only read and write its owner's tables.

    The role must not be able to administer the server (a superuser could read files or other
    databases); `leads/owner_data.py` provisions one role per owner with row privileges only.

    Every statement goes through the extended protocol (`prepare=True`): PostgreSQL itself
    refuses more than one command per statement, whatever the template tokenizer thought.
    A connection goes back to the pool with its session settings reset, so that one block's
    `SET` (search_path, standard_conforming_strings, statement_timeout, or `set_config()` in
    a query) never reaches the next block: every statement is followed by a `RESET ALL` (a
    query that fails is rolled back with whatever it SET); a connection whose statement was
    stopped midway (a cancel, a result past the output limit) is closed, not reused. A
    query's rows (SELECT, WITH, VALUES, anything with RETURNING) are streamed
    (`_stream_query`: libpq's single-row mode, `STREAM_CHUNK_ROWS`) and weighed as they
    come, so a result past the block's output limit stops there instead of arriving whole;
    a pipeline cannot stream, so such a query and its `RESET ALL` are two round trips. A
    write without RETURNING (INSERT, UPDATE, DELETE: no rows) carries its `RESET ALL` in its
    own pipeline, before the one Sync, so both are one implicit transaction — committed
    together, or rolled back together with any `SET` — without a round trip of its own. A
    statement whose caller gave up is cancelled by psycopg; `statement_timeout` bounds it
    on the server even if the cancel request is lost.

    Connections are in autocommit: a block's one statement is its own transaction, as it was
    between a BEGIN and a COMMIT, without those two round trips on every step (a loop's
    database step waited for four: BEGIN, the statement, COMMIT, RESET ALL). A transaction a
    statement leaves open (`BEGIN`) is ended by psycopg's connection context when the
    connection returns (a COMMIT with nothing but the BEGIN in it): the next block starts clean.
    """

    dialect: Dialect = "postgresql"

    def __init__(
        self, conninfo: str, *, max_size: int = 10, statement_timeout: float = STATEMENT_BOUND
    ) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._statement_timeout_ms = int(statement_timeout * 1000)
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> Any:
        if self._pool is not None:  # every statement after the first: no lock, no import
            return self._pool
        from psycopg_pool import AsyncConnectionPool

        async with self._lock:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self._conninfo,
                    min_size=1,
                    max_size=self._max_size,
                    open=False,
                    kwargs={
                        "options": _with_option(self._conninfo, self._statement_timeout_ms),
                        "autocommit": True,
                    },
                    configure=_configure_connection,
                )
                await pool.open()
                try:
                    await _refuse_privileged_role(pool)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def warm(self, connections: int) -> None:
        """Open `connections` (up to the pool's size) now, several at a time, instead of one
        by one as statements wait for them: psycopg's pool grows one connection at a time,
        so a loop's first items queued behind each other's connections (~5-10 ms each). The
        pool shrinks back as before, closing connections idle for its `max_idle`."""
        pool = await self._get_pool()
        missing = min(connections, self._max_size) - pool.get_stats()["pool_size"]
        if missing > 0:
            minimum = pool.min_size
            await pool.resize(minimum + missing, self._max_size)  # started on its workers
            await pool.resize(minimum, self._max_size)  # kept only while they are used

    async def execute(
        self, sql: str, params: Sequence[Any], *, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """`max_bytes`: the block's output limit; a result past it stops being read there
        (SizeLimitError) and its statement is cancelled."""
        import psycopg

        pool = await self._get_pool()
        async with pool.connection() as conn:
            query = _is_query(sql)
            try:
                if query and _returns_no_rows(sql):
                    # A write that returns nothing (the usual database step): nothing to
                    # stream, so its RESET ALL rides in its pipeline, one round trip.
                    cursor = await _query_then_reset(conn, sql, params)
                elif query:
                    result = await _stream_query(conn, sql, params, max_bytes)
                    await _reset_session(conn)
                    return result
                else:
                    cursor = await conn.execute(sql, list(params), prepare=True)
                    await _reset_session(conn)
            except psycopg.Error:
                # A query that failed was rolled back with whatever it SET.
                if not query or conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await _reset_session(conn)
                raise
            except BaseException:
                await conn.close()  # stopped midway: its session is unknown; the pool opens another
                raise
            # Not a query (SHOW, EXPLAIN, FETCH...): rows, if any, are already read whole by
            # libpq; they are still held to the limit before they are converted.
            rows = _Rows([c.name for c in cursor.description or ()], max_bytes)
            if cursor.description:
                for record in await cursor.fetchall():
                    rows.add(record)
            return {"rows": rows.rows, "rowcount": cursor.rowcount}

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _with_option(conninfo: str, statement_timeout_ms: int) -> str:
    """The connection's startup options plus ours, which RESET ALL returns to: the server-side
    statement bound, and the string syntax the SQL tokenizer reads (in '...' a backslash is text)."""
    from psycopg.conninfo import conninfo_to_dict

    existing = str(conninfo_to_dict(conninfo).get("options") or "")
    ours = f"-c statement_timeout={statement_timeout_ms} -c standard_conforming_strings=on"
    return f"{existing} {ours}".strip()


async def _configure_connection(conn: Any) -> None:
    """Load the types whose Python form would lose information (or fail) as PostgreSQL's text."""
    from psycopg.types.string import TextLoader

    for name in TEXT_TYPES:
        conn.adapters.register_loader(name, TextLoader)
    for name, loader in _fallback_loaders().items():
        conn.adapters.register_loader(name, loader)


# interval '1 mon' is not 30 days, and PostgreSQL's ranges read best as PostgreSQL writes them.
TEXT_TYPES = (
    "interval",
    "int4range",
    "int8range",
    "numrange",
    "daterange",
    "tsrange",
    "tstzrange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "datemultirange",
    "tsmultirange",
    "tstzmultirange",
)


def _fallback_loaders() -> dict[str, type]:
    """Date and time loaders that return the text of values Python cannot hold ('infinity',
    year 10000, '24:00') instead of failing the whole query."""
    import psycopg
    from psycopg.types import datetime as pg_datetime

    def tolerant(base: type) -> type:
        class Tolerant(base):  # type: ignore[misc]
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except psycopg.DataError:
                    return bytes(data).decode()

        return Tolerant

    return {
        "date": tolerant(pg_datetime.DateLoader),
        "time": tolerant(pg_datetime.TimeLoader),
        "timetz": tolerant(pg_datetime.TimetzLoader),
        "timestamp": tolerant(pg_datetime.TimestampLoader),
        "timestamptz": tolerant(pg_datetime.TimestamptzLoader),
    }


# Rows PostgreSQL sends per message while a query's result is read (libpq's single-row
# mode at 1): what libpq holds of a result at once, instead of all of it before the first
# row is seen; each row is weighed against the block's output limit before it is converted.
# One row: a result of 8 rows of 100 MB values held 8 in libpq at once (1.4 GB); the cost is
# per row read (20,000 small rows: ~0.1 s instead of ~0.025 s whole; one row: no more).
STREAM_CHUNK_ROWS = 1


async def _stream_query(
    conn: Any, sql: str, params: Sequence[Any], max_bytes: int | None
) -> dict[str, Any]:
    """The query through the extended protocol (one command only), its rows read a chunk
    at a time and counted against `max_bytes`: past it, SizeLimitError, and psycopg cancels
    the rest of the query. Its own implicit transaction (autocommit); the caller resets
    the session after it."""
    cursor = _streaming_cursor()(conn)
    rows: _Rows | None = None
    async for record in cursor.stream(sql, list(params), size=STREAM_CHUNK_ROWS):
        if rows is None:
            rows = _Rows([c.name for c in cursor.description], max_bytes)
        rows.add(record)
    if rows is not None:
        return {"rows": rows.rows, "rowcount": len(rows.rows)}
    final = cursor.final  # no rows: an empty result, or a statement without RETURNING
    changed = final.command_tuples if final is not None else None
    return {"rows": [], "rowcount": -1 if changed is None else changed}


@functools.cache
def _streaming_cursor() -> Any:
    """psycopg's cursor whose `stream()` also ends well on a statement without rows (an
    UPDATE: psycopg's own raises "didn't produce a result" after it ran) and keeps the
    statement's final result (`final`: how many rows it changed)."""
    from psycopg import AsyncCursor, pq
    from psycopg.generators import fetch

    row_results = (pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK)
    end_results = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)

    class StreamingCursor(AsyncCursor[Any]):
        final: Any = None

        def _stream_fetchone_gen(self, first: bool) -> Any:
            result = yield from fetch(self._pgconn)
            if result is None:
                return None
            if result.status in row_results:  # as psycopg's own
                self.pgresult = result
                self._tx.set_pgresult(result, set_loaders=first)
                if first:
                    self._make_row = self._make_row_maker()
                return result
            if result.status in end_results:
                self.final = result
                while (yield from fetch(self._pgconn)) is not None:
                    pass
                return None
            return self._raise_for_result(result)

    return StreamingCursor


async def _query_then_reset(conn: Any, sql: str, params: Sequence[Any]) -> Any:
    """The query, then RESET ALL, in one pipeline: one round trip, one transaction."""
    import psycopg

    failed: psycopg.Error | None = None
    try:
        async with conn.pipeline():
            try:
                cursor = await conn.execute(sql, list(params), prepare=True)
                # Never prepared: psycopg would count a prepared RESET skipped by an aborted
                # pipeline as prepared.
                await conn.execute("RESET ALL", prepare=False)
            except psycopg.Error as exc:  # raised after the pipeline's Sync, not logged
                failed = exc
    except psycopg.Error as exc:
        failed = failed or exc
    if failed is not None:
        raise failed
    return cursor


async def _reset_session(conn: Any) -> None:
    """Undo whatever the last block SET in this session before the next block gets it."""
    import psycopg

    try:
        await conn.execute("RESET ALL", prepare=False)
    except psycopg.Error:
        await conn.close()  # the pool replaces it
    except BaseException:  # a cancel: never handed on unreset
        await conn.close()
        raise


# The first word of a statement that can only be a query: never COPY (a pipeline cannot
# carry it), DISCARD, VACUUM, SET or a transaction command. Leading comments and opening
# parentheses are skipped; whatever this does not recognise is reset on its own.
_QUERY_START = re.compile(
    r"(?:\s+|--[^\n]*|/\*(?:[^*/]|\*(?!/)|/(?!\*))*\*/|\()*"
    r"(?:select|insert|update|delete|with|values|table)\b",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=512)
def _is_query(sql: str) -> bool:
    return _QUERY_START.match(sql) is not None


# A write (INSERT, UPDATE, DELETE) returns rows only through RETURNING, a keyword no comment
# or quoting can split: without the word anywhere in its text, it returns none.
_WRITE_START = re.compile(
    r"(?:\s+|--[^\n]*|/\*(?:[^*/]|\*(?!/)|/(?!\*))*\*/|\()*(?:insert|update|delete)\b",
    re.IGNORECASE,
)
_RETURNING = re.compile(r"returning", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def _returns_no_rows(sql: str) -> bool:
    return _WRITE_START.match(sql) is not None and _RETURNING.search(sql) is None


async def _refuse_privileged_role(pool: Any) -> None:
    import psycopg

    async with pool.connection() as conn:
        try:
            cursor = await conn.execute(
                "SELECT current_user, rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication "
                "OR rolbypassrls FROM klyntos_meta.role_attributes"  # ROLE_ATTRIBUTES_VIEW
            )
            row = await cursor.fetchone()
        except psycopg.Error as exc:  # cannot tell: refuse rather than trust
            raise DataAccessError(
                f"cannot check the data connection's role ({exc.__class__.__name__}); "
                "database blocks connect only as a provisioned per-owner role"
            ) from None
    if row is None or row[1]:
        name = row[0] if row else "?"
        raise DataAccessError(
            f"the data connection's role '{name}' may administer the server; "
            "connect database blocks as a role that only has table privileges"
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


class _Statement:
    """One statement handed to the SQLite worker; `cancel()` is safe from any thread."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = threading.Event()


# How long a statement waits for another connection's write lock before failing "locked".
BUSY_WAIT_SECONDS = 30.0
# How many SQLite virtual-machine steps run between two looks at the cancel flag: frequent
# enough to stop within a millisecond, rare enough to cost nothing on ordinary statements.
PROGRESS_STEPS = 10_000


# SQLite's own ceiling on a string or blob (SQLITE_MAX_LENGTH as compiled by default): the
# length limit a statement without an output limit gets back.
SQLITE_MAX_LENGTH = 1_000_000_000


def _too_big(exc: sqlite3.DataError, max_bytes: int | None) -> Exception:
    """SQLite's "string or blob too big" (a value past the length limit) as the block's
    output limit it comes from."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_TOOBIG and max_bytes is not None:
        return SizeLimitError("a value in the statement", max_bytes)
    return exc


class SqliteData:
    """Workflow SQL on the embedded SQLite file, on one connection owned by one thread.

    The event loop only ever hands work to that thread and awaits a future: it never takes a
    lock the thread holds. When the caller stops waiting (timeout, cancel), the statement is
    interrupted in SQLite — `interrupt()` stops a running statement, and the progress handler
    stops one that was about to start — and a wait for another connection's write lock ends,
    so the thread is free for the next block at once.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-data")
        self._current: _Statement | None = None  # the statement on the worker (worker-owned)
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # No busy timeout in SQLite: its sleep cannot be interrupted, so waiting for
            # another writer's lock happens in `_execute`, where a cancel is seen.
            conn = sqlite3.connect(
                self._path, timeout=0, check_same_thread=False, isolation_level=None
            )
            try:
                conn.create_function("NOW", 0, _now)
                # WAL + NORMAL: a commit per item costs a write, not an fsync of the file.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                conn.close()
                raise
            conn.set_authorizer(_sqlite_authorizer)
            conn.set_progress_handler(self._should_stop, PROGRESS_STEPS)
            self._conn = conn
        return self._conn

    def _should_stop(self) -> int:
        current = self._current
        return 1 if current is not None and current.cancelled.is_set() else 0

    def _execute(
        self, sql: str, params: Sequence[Any], statement: _Statement, max_bytes: int | None
    ) -> dict[str, Any]:
        if statement.cancelled.is_set():
            raise sqlite3.OperationalError("interrupted")
        self._current = statement
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        pause, stray_interrupt = 0.001, False
        try:
            while True:
                try:
                    return self._run(sql, params, max_bytes)
                except sqlite3.OperationalError as exc:
                    if statement.cancelled.is_set():
                        raise
                    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # primary code
                    if code == sqlite3.SQLITE_INTERRUPT and not stray_interrupt:
                        # An interrupt meant for the statement before this one, landing as
                        # this one started (a microseconds-wide race): run it again, once.
                        stray_interrupt = True
                        continue
                    if code != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                        raise
                # Another connection holds the write lock (the statement did nothing, it
                # rolled back): wait a little, unless the caller stopped waiting meanwhile.
                if statement.cancelled.wait(pause):
                    raise sqlite3.OperationalError("interrupted")
                pause = min(pause * 2, 0.05)
        finally:
            self._current = None

    def _run(self, sql: str, params: Sequence[Any], max_bytes: int | None) -> dict[str, Any]:
        conn = self._connection()
        # No single string or blob past the output limit: SQLite refuses to make it
        # (zeroblob(900 MB) fails at once, SQLITE_TOOBIG) instead of handing it over.
        length = (
            SQLITE_MAX_LENGTH if max_bytes is None else max(1, min(max_bytes, SQLITE_MAX_LENGTH))
        )
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
        try:
            cursor = conn.execute(sql, list(params))
        except sqlite3.DataError as exc:
            raise _too_big(exc, max_bytes) from None
        try:
            if not cursor.description:
                return {"rows": [], "rowcount": cursor.rowcount}
            rows = _Rows([c[0] for c in cursor.description], max_bytes)
            for record in cursor:  # one row at a time: SQLite steps as it is read
                rows.add(record)
            return {"rows": rows.rows, "rowcount": cursor.rowcount}
        except sqlite3.DataError as exc:
            raise _too_big(exc, max_bytes) from None
        finally:
            cursor.close()  # a result left unread (past the limit) ends its read here

    async def execute(
        self, sql: str, params: Sequence[Any], *, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """`max_bytes`: the block's output limit, for each value and for the whole result."""
        if self._closed:
            raise sqlite3.ProgrammingError("the data connection is closed")
        statement = _Statement()
        future = self._worker.submit(self._execute, sql, params, statement, max_bytes)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self._stop(statement)
            raise

    def _stop(self, statement: _Statement) -> None:
        statement.cancelled.set()
        conn = self._conn
        if conn is not None and self._current is statement:
            conn.interrupt()  # thread-safe; ends the running step with "interrupted"

    async def aclose(self) -> None:
        """Close on the worker; a statement still running there is interrupted, not awaited
        on the loop (the wait below is a future, bounded, and leaves the loop free)."""
        if self._closed:
            return
        self._closed = True
        current = self._current
        if current is not None:
            self._stop(current)
        closing: Future[None] = self._worker.submit(self._close)
        self._worker.shutdown(wait=False)
        await asyncio.wait([asyncio.wrap_future(closing)], timeout=CLOSE_WAIT_SECONDS)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# An interrupted statement returns within milliseconds; past this, closing finishes on the
# worker by itself and the run does not wait for it.
CLOSE_WAIT_SECONDS = 5.0
