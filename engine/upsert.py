"""Batched upserts of a run's rows (ItemRun, StepRun) with little Python work per row.

The run store writes every item and step row, often twice (running, then ended), so the cost
per row is the stored path's cost per item. `bulk_create(update_conflicts=True)` builds a
model instance per row and prepares each of its fields through the ORM, and on PostgreSQL it
then sends each column as an array whose every element is quoted in Python: about 0.1 ms of
the store thread's CPU per row, and that thread holds the GIL the event loop needs.

Here a batch is one statement, `INSERT … ON CONFLICT (unique fields) DO UPDATE` of the given
fields, as `bulk_create` would write it:

- PostgreSQL: the rows travel as one JSON document (ujson, in C, a slice of rows at a
  time) that the server unpacks with `jsonb_to_recordset` into typed columns (times as
  seconds since the epoch, through `to_timestamp`);
- SQLite: the rows as tuples through `executemany` (one loop in C), each value adapted as
  the ORM would store it (JSON text, Django's datetime text);
- any other database: `bulk_create`.

A value a column cannot take fails the statement as it failed `bulk_create`, and the caller's
fallback (engine/store.py `_storable`) applies unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper

from engine.json_text import dumps_rows

# Rows per encoding call: a batch of big outputs is encoded in slices, not in one
# GIL-holding call (engine/json_text.py).
ROWS_PER_SLICE = 200
# The rows' times: a datetime, or seconds since the epoch (how the store's rows hold them).
TIME_FIELDS = frozenset({"started_at", "finished_at"})


def from_epoch(seconds: float) -> dt.datetime:
    """Epoch seconds (an event's `at`) as the UTC datetime the ORM stores."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _datetimes(row: dict[str, Any]) -> dict[str, Any]:
    """A row whose times are epoch seconds (a store's rows) with datetimes instead."""
    return {
        k: from_epoch(v) if k in TIME_FIELDS and isinstance(v, int | float) else v
        for k, v in row.items()
    }


class Upsert:
    """`INSERT … ON CONFLICT DO UPDATE` of one model's rows under one run.

    A row is a dict keyed by field name (the run's foreign key excepted: it is `run_id`);
    fields it lacks take `defaults`, then the model's defaults. Its times (`TIME_FIELDS`)
    may be datetimes or epoch seconds."""

    def __init__(
        self,
        model: type[models.Model],
        *,
        unique: Sequence[str],
        update: Sequence[str],
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.unique = list(unique)
        self.update = list(update)
        self.extra_defaults = dict(defaults or {})
        self._fields: list[models.Field[Any, Any]] | None = None
        self._base: dict[str, Any] = {}
        self._statements: dict[str, str] = {}

    # --- the model's columns (read once the apps are ready) ------------------------------

    def fields(self) -> list[models.Field[Any, Any]]:
        """The row's columns: every concrete field but the primary key and the run."""
        if self._fields is None:
            fields = [
                f for f in self.model._meta.concrete_fields if not f.primary_key and f.name != "run"
            ]
            self._base = {f.name: f.get_default() for f in fields} | self.extra_defaults
            self._fields = fields
        return self._fields

    def _run_field(self) -> models.Field[Any, Any]:
        field: models.Field[Any, Any] = self.model._meta.get_field("run")  # type: ignore[assignment]
        return field

    def _column(self, name: str) -> str:
        field: models.Field[Any, Any] = self.model._meta.get_field(name)  # type: ignore[assignment]
        return str(field.column)

    def _conflict_and_update(self, connection: BaseDatabaseWrapper, excluded: str) -> str:
        qn = connection.ops.quote_name
        targets = ", ".join(qn(self._column(name)) for name in self.unique)
        sets = ", ".join(
            f"{qn(self._column(name))} = {excluded}.{qn(self._column(name))}"
            for name in self.update
        )
        return f"ON CONFLICT ({targets}) DO UPDATE SET {sets}"

    # --- writing ---------------------------------------------------------------------------

    def upsert(self, run_id: Any, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        connection = connections[router.db_for_write(self.model)]
        if connection.vendor == "postgresql":
            self._postgresql(connection, run_id, rows)
        elif connection.vendor == "sqlite":
            self._sqlite(connection, run_id, rows)
        else:
            self.model._default_manager.bulk_create(
                [
                    self.model(run_id=run_id, **{**self.extra_defaults, **_datetimes(row)})
                    for row in rows
                ],
                update_conflicts=True,
                unique_fields=self.unique,
                update_fields=self.update,
            )

    def _postgresql(
        self, connection: BaseDatabaseWrapper, run_id: Any, rows: list[dict[str, Any]]
    ) -> None:
        statement, params = self.postgresql_statement(connection, run_id, rows)
        with connection.cursor() as cursor:
            cursor.execute(statement, params)

    def postgresql_statement(
        self, connection: BaseDatabaseWrapper, run_id: Any, rows: list[dict[str, Any]]
    ) -> tuple[str, list[Any]]:
        """The PostgreSQL statement and its parameters, for a caller that sends it itself
        (a pipeline, an asynchronous connection). `connection` only quotes and types."""
        fields = self.fields()
        base = self._base
        times = [f.name for f in fields if isinstance(f, models.DateTimeField)]
        columns = base.keys()
        records = []
        for row in rows:
            # A row with every column (the store's, nearly always) needs no defaults merged in.
            record = row if columns <= row.keys() else {**base, **row}
            for name in times:
                value = record[name]
                if isinstance(value, dt.datetime):
                    # Seconds since the epoch (to_timestamp in the statement), as the store's
                    # rows hold them: exact to the microsecond for this century. Never
                    # written into the caller's row.
                    if record is row:
                        record = dict(row)
                    record[name] = value.timestamp()
            records.append(record)
        document = dumps_rows(records, ROWS_PER_SLICE)
        run = self._run_field().get_db_prep_value(run_id, connection)
        return self._postgresql_statement(connection), [run, document]

    def _postgresql_statement(self, connection: BaseDatabaseWrapper) -> str:
        statement = self._statements.get("postgresql")
        if statement is None:
            qn = connection.ops.quote_name
            fields = self.fields()
            run = self._run_field()
            columns = ", ".join(qn(c) for c in [run.column, *(f.column for f in fields)])
            times = {f.name for f in fields if isinstance(f, models.DateTimeField)}
            picked = ", ".join(
                f"to_timestamp(r.{qn(f.name)})" if f.name in times else f"r.{qn(f.name)}"
                for f in fields
            )
            typed = ", ".join(
                f"{qn(f.name)} {'double precision' if f.name in times else f.db_type(connection)}"
                for f in fields
            )
            # Names and types from the model's own fields, quoted; the values are parameters.
            statement = (
                f"INSERT INTO {qn(self.model._meta.db_table)} ({columns})"  # noqa: S608
                f" SELECT %s::{run.db_type(connection)}, {picked}"
                f" FROM jsonb_to_recordset(%s::jsonb) AS r({typed}) "
                + self._conflict_and_update(connection, "EXCLUDED")
            )
            self._statements["postgresql"] = statement
        return statement

    def _sqlite(
        self, connection: BaseDatabaseWrapper, run_id: Any, rows: list[dict[str, Any]]
    ) -> None:
        fields = self.fields()
        base = self._base
        names = [f.name for f in fields]
        adapt_time = connection.ops.adapt_datetimefield_value
        jsons = {f.name for f in fields if isinstance(f, models.JSONField)}
        times = {f.name for f in fields if isinstance(f, models.DateTimeField)}
        run = self._run_field().get_db_prep_value(run_id, connection)
        params = []
        for row in rows:
            record = {**base, **row}
            for name in jsons:
                value = record[name]
                if value is not None:
                    record[name] = json.dumps(value)
            for name in times:
                value = record[name]
                if isinstance(value, int | float):
                    value = from_epoch(value)
                if isinstance(value, dt.datetime):
                    record[name] = adapt_time(value)
            params.append([run, *(record[name] for name in names)])
        with connection.cursor() as cursor:
            cursor.executemany(self._sqlite_statement(connection), params)

    def _sqlite_statement(self, connection: BaseDatabaseWrapper) -> str:
        statement = self._statements.get("sqlite")
        if statement is None:
            qn = connection.ops.quote_name
            fields = self.fields()
            columns = [self._run_field().column, *(f.column for f in fields)]
            statement = (
                f"INSERT INTO {qn(self.model._meta.db_table)}"  # noqa: S608
                f" ({', '.join(qn(c) for c in columns)})"
                f" VALUES ({', '.join(['%s'] * len(columns))}) "
                + self._conflict_and_update(connection, "excluded")
            )
            self._statements["sqlite"] = statement
        return statement
