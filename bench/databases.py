"""Fresh PostgreSQL databases for a benchmark, on the server `DATABASE_URL` names.

The benchmarks that store rows (f, g, h) run Klyntos as users run it, on PostgreSQL; each
gets its own pair of empty databases (`<name>_bench_<tag>`, and `_data` for the workflow
tables) so a run never meets another's rows, and drops them afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.harness import BenchError

DEFAULT_URL = "postgres://root@127.0.0.1:5432/klyntos"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(_with_database(url, "postgres"), autocommit=True)


@contextmanager
def fresh_databases(tag: str) -> Iterator[dict[str, str]]:
    """`DATABASE_URL` and `DATA_DATABASE_URL` of two new, empty databases (dropped after)."""
    base = os.environ.get("DATABASE_URL") or DEFAULT_URL
    if not base.startswith(("postgres://", "postgresql://")):
        raise BenchError(f"this benchmark needs PostgreSQL; DATABASE_URL is {base!r}")
    name = (urlsplit(base).path.lstrip("/") or "klyntos") + f"_bench_{tag}"
    names = [name, name + "_data"]

    def drop(conn: psycopg.Connection) -> None:
        for db in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )

    with _admin(base) as conn:
        drop(conn)
        for db in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        yield {
            "DATABASE_URL": _with_database(base, names[0]),
            "DATA_DATABASE_URL": _with_database(base, names[1]),
        }
    finally:
        if not os.environ.get("BENCH_KEEP_DATABASES"):  # kept: to look into a run's rows
            with _admin(base) as conn:
                drop(conn)
