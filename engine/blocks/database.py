"""Database query on the data connection; every reference is a bound parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.blocks.base import BaseBlock, config_schema
from engine.core.errors import BlockError, SizeLimitError, TransientError
from engine.core.schemas import JsonSchema, array, obj
from engine.core.spec import BlockContext
from engine.core.sqlrefs import SqlTemplateError, check_sql, compile_sql


class DatabaseBlock(BaseBlock):
    type = "database"
    label = "Database query"
    description = "Runs one SQL statement on the workflow data database."
    icon = "database"
    test_effect = "runs the statement on your data for real: an INSERT or UPDATE writes rows"
    raw_fields = frozenset({"sql"})
    config_schema = config_schema(
        {"sql": {"type": "string", "minLength": 1, "title": "SQL"}}, required=["sql"], retry=True
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj({"rows": array({"type": "object"}), "rowcount": {"type": "integer"}})

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [("sql", problem) for problem in check_sql(str(config.get("sql", "")))]

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        data = ctx.services.data
        if data is None:
            raise BlockError("no data database is configured (DATA_DATABASE_URL)")
        try:
            sql, params = compile_sql(ctx.raw_config["sql"], ctx.scope, data.dialect)
        except SqlTemplateError as exc:
            raise BlockError(f"sql: {exc}") from None
        try:
            # Held to the output limit while the rows are read, not after they all arrived.
            return dict(await data.execute(sql, params, max_bytes=ctx.max_output_bytes))
        except SizeLimitError:
            raise
        except Exception as exc:
            if _is_transient(exc):
                raise TransientError(f"database unavailable: {exc}") from exc
            raise BlockError(f"query failed: {str(exc).strip().splitlines()[0]}") from exc


def _is_transient(exc: Exception) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.OperationalError)
