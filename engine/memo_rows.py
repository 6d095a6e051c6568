"""A run's memo from stored rows (engine/core/memo.py says what a memo is)."""

from __future__ import annotations

from typing import Any

from engine.core.graph import Graph
from engine.core.memo import DoneItem, ItemFailure, Memo, StoredStep, downstream_of_loops
from engine.models import ItemRun, StepRun

CHUNK = 2000


def _steps(run_id: Any, skip: set[str]) -> dict[tuple[str, str], StoredStep]:
    rows = (
        StepRun.objects.filter(run_id=run_id, status="succeeded", redacted=False)
        .exclude(block_id__in=skip)
        .values_list("item_key", "block_id", "output", "attempts", "usage", "duration")
        .order_by()
    )
    return {
        (item_key, block_id): StoredStep(output, attempts or 1, usage or [], duration)
        for item_key, block_id, output, attempts, usage, duration in rows.iterator(CHUNK)
    }


def _done(run_id: Any) -> dict[str, DoneItem]:
    rows = ItemRun.objects.filter(run_id=run_id, status="succeeded").values_list(
        "key", "worker", "started_at", "duration"
    )
    return {
        key: DoneItem(worker, started.timestamp() if started else None, duration)
        for key, worker, started, duration in rows.order_by().iterator(CHUNK)
    }


def _loops(graph: Graph) -> set[str]:
    return {b.id for b in graph.blocks if b.is_loop}


def memo_for_resume(run_id: Any, graph: Graph) -> Memo:
    """Everything the run stored as done stays done: succeeded steps are reused, recorded
    item failures stand; items in flight at the stop restart from their first unfinished
    step, items never started start."""
    failures = {
        key: ItemFailure(block or None, error)
        for key, block, error in ItemRun.objects.filter(run_id=run_id, status="failed")
        .values_list("key", "failed_block", "error")
        .order_by()
        .iterator(CHUNK)
    }
    return Memo(_steps(run_id, _loops(graph)), failures, _done(run_id))


def memo_for_retry(source_id: Any, graph: Graph) -> Memo:
    """The source run's succeeded steps, except what reads a loop's output (computed again
    from the whole batch): failed items run again from their failed step."""
    return Memo(_steps(source_id, _loops(graph) | downstream_of_loops(graph)), {}, _done(source_id))
