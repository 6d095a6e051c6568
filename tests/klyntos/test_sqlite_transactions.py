"""The embedded default (SQLite in WAL mode) under a concurrent writer: a transaction that
reads and then writes — saving a workflow while a run stores its items — must wait for the
lock, never fail with "database is locked". In WAL mode a deferred transaction that read
before another connection committed cannot upgrade to a writer and SQLite refuses at once,
without its busy timeout; the settings begin every transaction IMMEDIATE for that reason."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections, transaction

from klyntos.settings import _database


@pytest.fixture
def two_sqlite_connections(tmp_path: Path, django_db_blocker: Any) -> Iterator[tuple[str, str]]:
    # Two connections of their own to a fresh file, outside the test database's wrapping.
    config = _database(f"sqlite:///{tmp_path / 'probe.sqlite3'}")
    aliases = ("sqlite_writer", "sqlite_saver")
    for alias in aliases:
        configured = connections.configure_settings({"default": {}, alias: dict(config)})
        connections.settings[alias] = configured[alias]
    try:
        with django_db_blocker.unblock():
            yield aliases
    finally:
        for alias in aliases:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]


def test_every_sqlite_transaction_begins_immediate(tmp_path: Path) -> None:
    options = _database(f"sqlite:///{tmp_path / 'x.sqlite3'}")["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert (
        _database("postgres://root@127.0.0.1:5432/x").get("OPTIONS", {}).get("transaction_mode")
        is None
    )


def test_read_then_write_waits_for_a_busy_writer_instead_of_failing(
    two_sqlite_connections: tuple[str, str],
) -> None:
    writer, saver = two_sqlite_connections
    with connections[writer].cursor() as cursor:
        cursor.execute("CREATE TABLE items (n INTEGER)")
        cursor.execute("CREATE TABLE versions (n INTEGER)")
    stop = threading.Event()
    errors: list[BaseException] = []

    def store_items() -> None:  # a run's store: many short write transactions
        try:
            while not stop.is_set():
                with transaction.atomic(using=writer), connections[writer].cursor() as cursor:
                    cursor.execute("INSERT INTO items VALUES (1)")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections[writer].close()

    thread = threading.Thread(target=store_items)
    thread.start()
    saved = 0
    try:
        for _ in range(50):
            with transaction.atomic(using=saver), connections[saver].cursor() as cursor:
                cursor.execute("SELECT count(*) FROM items")  # read (validation, versions)
                time.sleep(0.002)  # the writer commits meanwhile
                cursor.execute("INSERT INTO versions VALUES (1)")  # then write
            saved += 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert saved == 50
    with connections[saver].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM items")
        items: Any = cursor.fetchone()
    assert items[0] > 0
