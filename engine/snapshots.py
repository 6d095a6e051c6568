"""A run's whole state as one JSON-ready message, read from the database (the truth).

The websocket sends it on connect and when the run ends (engine/consumers.py); its shape is
`RunSnapshotMessage` in frontend/src/types.ts. Dates are ISO strings, like the deltas that
engine/store.py publishes, and step outputs are left out (they can be large; the REST API
serves them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connections, transaction

from engine.models import ItemRun, Run, StepRun

ITEM_FIELDS = (
    "key",
    "loop_block",
    "parent_key",
    "index",
    "status",
    "data",
    "error",
    "failed_block",
    "started_at",
    "finished_at",
    "duration",
)
STEP_FIELDS = (
    "item_key",
    "block_id",
    "name",
    "status",
    "error",
    "attempts",
    "started_at",
    "finished_at",
    "duration",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _row(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in values.items()}


def run_summary(run: Run) -> dict[str, Any]:
    duration = None
    if run.started_at and run.finished_at:
        duration = (run.finished_at - run.started_at).total_seconds()
    return {
        "id": str(run.pk),
        "workflow": run.workflow_id,
        "workflow_version": run.version.number,
        "status": run.status,
        "trigger": run.trigger,
        "progress": run.progress,
        "error": run.error,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration": duration,
        "last_seq": run.last_seq,
    }


def run_snapshot(run_id: Any) -> dict[str, Any]:
    """`{"type": "snapshot", "seq", "final", "run", "items", "steps"}` for the run.

    The run row and its item and step rows are read in one repeatable-read transaction, so
    `seq` (the run's `last_seq`) matches the rows exactly: the store commits each batch (rows
    and `last_seq`) in one transaction, and only publishes it afterwards.
    Raises `Run.DoesNotExist` for an unknown id.
    """
    connection = connections["default"]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using="default"):
        if outermost and connection.vendor == "postgresql":  # must come before any query
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        run = Run.objects.select_related("version").get(pk=run_id)
        items = ItemRun.objects.filter(run_id=run.pk).order_by(
            "parent_key", "loop_block", "index", "id"
        )
        steps = StepRun.objects.filter(run_id=run.pk).order_by("item_key", "started_at", "id")
        return {
            "type": "snapshot",
            "seq": run.last_seq,
            "final": run.is_final,
            "run": run_summary(run),
            "items": [_row(values) for values in items.values(*ITEM_FIELDS)],
            "steps": [_row(values) for values in steps.values(*STEP_FIELDS)],
        }
