"""`rows.update(**values)` as a statement to send with others in one query (the stores'
batches, engine/loop_connection.py), compiled by Django once per shape, not per batch.

Django's compiler took ~0.5 ms for a chunk row's update (its `.exclude(run__status__in=…)`
becomes a sub-select that Django sets up, orders and aliases like any query), and a worker
writes its chunks' rows a few times each, on the event loop its items run on, with the GIL
shared with them. The SQL of an update depends only on the model, its filters, the columns
set and which of them are NULL; what changes from one batch (or one chunk) to the next is
its parameters. So a `RowUpdate` keeps the SQL per set of columns and binds the new values
the way Django's update compiler does (`field.get_db_prep_save`).

Rows named by a `shape` share their SQL with every `RowUpdate` of that shape (a worker's
chunks, each with its own chunk id and lease owner); such a caller gives the filters'
parameters in the order Django binds them, checked against Django's own compilation the
first time: a mismatch is logged and that shape compiled every time, never sent wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from django.db import connections, router
from django.db.models import Field, QuerySet
from django.db.models.sql import UpdateQuery

from engine.loop_connection import Statement

log = logging.getLogger(__name__)

# (shape, database alias, columns) → the SQL, or None: the shape's parameters did not match.
_SHARED: dict[tuple[str, str, tuple[tuple[str, bool], ...]], str | None] = {}


def update_statement(rows: QuerySet[Any], values: dict[str, Any]) -> Statement:
    """`rows.update(**values)`'s statement, compiled by Django (every time)."""
    query = cast(UpdateQuery, rows.query.chain(UpdateQuery))
    query.add_update_values(values)
    return query.get_compiler(router.db_for_write(rows.model)).as_sql()


def select_statement(rows: QuerySet[Any]) -> Statement:
    """`rows`' query as a statement to send with others, compiled by Django (every time)."""
    sql, params = rows.query.get_compiler(router.db_for_write(rows.model)).as_sql()
    return sql, list(params)


class RowUpdate:
    """Updates of one set of rows (see the module docstring)."""

    def __init__(
        self, rows: QuerySet[Any], shape: str = "", where: Sequence[Any] | None = None
    ) -> None:
        self.rows = rows
        self.alias = router.db_for_write(rows.model)
        self._shape = shape
        # The filters' parameters: a shape's are given; otherwise taken from Django's first
        # compilation (these rows' own, never shared).
        self._where: list[Any] | None = None if where is None else list(where)
        self._sql: dict[tuple[tuple[str, bool], ...], str] = {}

    def update(self, values: dict[str, Any]) -> int:
        """Django's own `update` (on the calling thread's connection)."""
        return int(self.rows.update(**values))

    def statement(self, values: dict[str, Any]) -> Statement:
        columns = tuple((name, value is None) for name, value in values.items())
        bound = self._bound(values)
        if bound is not None:
            sql = self._sql.get(columns)
            if sql is None and self._shape:
                sql = _SHARED.get((self._shape, self.alias, columns))
            if sql is not None and self._where is not None:
                return sql, [*bound, *self._where]
        sql, params = update_statement(self.rows, values)
        if bound is not None:
            self._learn(columns, sql, list(params), bound)
        return sql, params

    def _bound(self, values: dict[str, Any]) -> list[Any] | None:
        """The SET parameters as Django's update compiler binds them; None when a value is
        more than a value (an expression, a model instance) or its field places it itself."""
        connection = connections[self.alias]
        meta = self.rows.model._meta
        bound = []
        for name, value in values.items():
            if value is None:
                continue
            if hasattr(value, "resolve_expression") or hasattr(value, "prepare_database_save"):
                return None
            field = meta.get_field(name)
            if not isinstance(field, Field) or hasattr(field, "get_placeholder"):
                return None
            prepared = field.get_db_prep_save(value, connection=connection)
            if prepared is None or hasattr(prepared, "as_sql"):  # Django writes NULL or SQL
                return None
            bound.append(prepared)
        return bound

    def _learn(
        self, columns: tuple[tuple[str, bool], ...], sql: str, params: list[Any], bound: list[Any]
    ) -> None:
        set_count = len(bound)
        where = params[set_count:]
        # Kept only when Django bound the values first and as `_bound` does (a field Django
        # updates apart, or leaves out, would shift the filters' parameters): else compiled
        # each time.
        if sql.count("%s") != len(params) or [repr(p) for p in params[:set_count]] != [
            repr(b) for b in bound
        ]:
            return
        if not self._shape:
            self._where = where
            self._sql[columns] = sql
            return
        key = (self._shape, self.alias, columns)
        if key in _SHARED:
            if _SHARED[key] is not None:
                self._sql[columns] = sql
            return
        if where == self._where:
            _SHARED[key] = self._sql[columns] = sql
        else:  # compiled every time from now on
            _SHARED[key] = None
            log.warning(
                "updates of shape %s bind %r, not the %r given: compiled each time",
                self._shape,
                where,
                self._where,
            )
