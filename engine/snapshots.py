"""A run's whole state as one JSON-ready message, read from the database (the truth).

The websocket sends it on connect and when the run ends (engine/consumers.py); its shape is
docs/run-protocol.md's snapshot. Its size does not depend on the number of items: counters,
not rows, and at most a fixed number of (trimmed) items. Dates are ISO strings, like the
deltas that engine/store.py publishes; step outputs are left out (the REST API serves them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connections, transaction
from django.db.models import F
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce

from engine.core.bounded import json_size, trim_text
from engine.core.counters import COUNTS
from engine.core.provider_state import paused
from engine.models import ItemRun, Run, StepRun
from engine.store import (
    ITEM_DATA_BYTES,
    TEXT_CHARS,
    WIRE_ITEMS,
    loops_of_graph,
    wire_blocks,
    wire_item,
    wire_step,
)

RECENT = WIRE_ITEMS
FAILED = WIRE_ITEMS
RUN_ERROR_CHARS = 2000
FRAME_BYTES = 64 * 1024
# What a frame may weigh before items are dropped from it: room under FRAME_BYTES.
FRAME_BUDGET = 60_000
LIMITS = {
    "recent": RECENT,
    "failed": FAILED,
    "frame_bytes": FRAME_BYTES,
    "item_data_bytes": ITEM_DATA_BYTES,
    "text_chars": TEXT_CHARS,
}

ITEM_FIELDS = (
    "key",
    "loop_block",
    "parent_key",
    "index",
    "status",
    "data",
    "error",
    "failed_block",
    "worker",
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
        "draft": bool((run.options or {}).get("draft")),
        "weight": float((run.options or {}).get("weight") or 1.0),
        "priority": int((run.options or {}).get("priority") or 0),
        "retry_of": str(run.retry_of_id) if run.retry_of_id else None,
        "retries": [
            str(pk) for pk in run.retries.order_by("created_at").values_list("pk", flat=True)
        ],
        "resumes": run.resumes,
        "progress": run.progress,
        "error": trim_text(run.error, RUN_ERROR_CHARS),
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "deferred_until": _iso(run.deferred_until),
        "duration": duration,
        "last_seq": run.last_seq,
        "providers": run.providers,
        # The providers whose breaker pauses the run (the editor derives it from `providers`
        # as deltas change them).
        "paused": [] if run.is_final else paused(run.providers),
    }


def _graph_blocks(run: Run) -> list[dict[str, Any]]:
    blocks = (run.version.graph or {}).get("blocks") or []
    return [b for b in blocks if isinstance(b, dict) and isinstance(b.get("id"), str)]


def run_snapshot(run_id: Any) -> dict[str, Any]:
    """The bounded snapshot of docs/run-protocol.md: the run, every block's counters, the
    loops' counters and limits, top-level steps, and at most `RECENT` + `FAILED` items.

    Read in one repeatable-read transaction, so `seq` (the run's `last_seq`) matches the rows
    exactly: the store commits each batch (rows, counters and `last_seq`) in one transaction,
    and only publishes it afterwards. One exception: a row that only started less than the
    store's interval ago is held back from the database (engine/store.py), so an item or step
    that just began may be missing from the rows while the counters count it running.
    Raises `Run.DoesNotExist` for an unknown id.
    """
    connection = connections["default"]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using="default"):
        if outermost and connection.vendor == "postgresql":  # must come before any query
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        run = Run.objects.select_related("version").get(pk=run_id)
        items = ItemRun.objects.filter(run_id=run.pk)
        recent = list(
            items.annotate(changed=Coalesce("finished_at", "started_at"))
            .order_by(F("changed").desc(nulls_last=True), "-id")
            .values(*ITEM_FIELDS)[:RECENT]
        )
        failed = list(
            items.filter(status="failed").order_by("index", "id").values(*ITEM_FIELDS)[:FAILED]
        )
        steps = StepRun.objects.filter(run_id=run.pk, item_key="").order_by("started_at", "id")
        rows: dict[str, dict[str, Any]] = {}
        for row in [*recent, *failed]:
            rows.setdefault(row["key"], row)
        blocks = _graph_blocks(run)
        loop_ids = [b["id"] for b in blocks if b.get("type") == "loop"]
        return bounded_frame(
            {
                "type": "snapshot",
                "seq": run.last_seq,
                "final": run.is_final,
                "run": run_summary(run),
                "blocks": wire_blocks(
                    run.blocks or {},
                    [b["id"] for b in blocks],
                    ended=run.is_final,
                    loop_of=loops_of_graph(blocks),
                ),
                "loops": {k: _loop_state(run.loops or {}, k) for k in loop_ids},
                "steps": [wire_step(values) for values in _with_skips(steps)],
                "items": [wire_item(row) for row in rows.values()],
                "recent": [row["key"] for row in recent],
                "failed": [row["key"] for row in failed],
                "limits": LIMITS,
            }
        )


def _with_skips(steps: Any) -> list[dict[str, Any]]:
    """Top-level step rows with `skipped` set for those `run_if` skipped, read from the two
    keys of their output a skip writes (engine/core/executor.py `skipped_output`), never the
    whole output (a loop's may be megabytes)."""
    rows = steps.annotate(
        skip_flag=KeyTransform("skipped", "output"),
        skip_reason=KeyTextTransform("reason", "output"),
    ).values(*STEP_FIELDS, "skip_flag", "skip_reason")
    found = []
    for row in rows:
        flag, reason = row.pop("skip_flag"), row.pop("skip_reason")
        row["skipped"] = flag is True and isinstance(reason, str) and reason.startswith("skipped: ")
        found.append(row)
    return found


def _loop_state(loops: dict[str, Any], loop_id: str) -> dict[str, int]:
    state = loops.get(loop_id) or {}
    keys = ("total", *COUNTS, "max_concurrent", "limit", "peak_running")
    out = {k: int(state.get(k, 0)) for k in keys}
    if state.get("batches"):  # waves: "batch 3/5"
        out.update(batch=int(state.get("batch", 0)), batches=int(state["batches"]))
    return out


def bounded_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """Drops items (oldest listed last first) until the frame's JSON is under the budget; the
    trimming of each item already keeps this rare. Says how many it dropped."""
    while len(frame["items"]) and json_size(frame) > FRAME_BUDGET:
        keep = len(frame["items"]) // 2
        dropped = frame["items"][keep:]
        frame["items"] = frame["items"][:keep]
        frame["items_omitted"] = frame.get("items_omitted", 0) + len(dropped)
        gone = {row["key"] for row in dropped}
        for name in ("recent", "failed"):
            if name in frame:
                frame[name] = [k for k in frame[name] if k not in gone]
    return frame
