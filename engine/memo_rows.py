"""A run's memo from stored rows (engine/core/memo.py says what a memo is)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Q

from engine.core.graph import Graph
from engine.core.memo import DoneItem, ItemFailure, Memo, StoredStep, downstream_of_loops
from engine.models import ItemRun, Run, StepRun

CHUNK = 2000
# What a step read without its output stands for (StoredStep is frozen: one is shared).
STORED = StoredStep(None)


def _steps(
    run_id: Any,
    skip: set[str],
    where: Q | None = None,
    *,
    outputs: bool = True,
    carried: bool = False,
) -> dict[tuple[str, str], StoredStep]:
    """`outputs` False: which steps are stored, nothing of them read (a composed loop whose
    output nobody reads only needs to know its items' steps are all stored). `carried`: the
    steps of the run a retry repeats, which the retry did not make (`StoredStep.carried`)."""
    rows = (
        StepRun.objects.filter(run_id=run_id, status="succeeded", redacted=False)
        .filter(where or Q())
        .exclude(block_id__in=skip)
        .order_by()
    )
    if not outputs:  # two short strings a row: no JSON column read or decoded
        return {key: STORED for key in rows.values_list("item_key", "block_id").iterator(CHUNK)}
    columns = ["item_key", "block_id", "attempts", "usage", "duration", "output", "cache"]
    found: dict[tuple[str, str], StoredStep] = {}
    for row in rows.values_list(*columns, "saved_usage").iterator(CHUNK):
        step = StoredStep(row[5], row[2] or 1, row[3] or [], row[4], row[6], row[7] or [])
        found[row[0], row[1]] = step.carried() if carried else step
    return found


def _done(run_id: Any, where: Q | None = None) -> dict[str, DoneItem]:
    rows = ItemRun.objects.filter(where or Q(), run_id=run_id, status="succeeded").values_list(
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
    memo = Memo(_steps(run_id, _loops(graph)), _failures(run_id), _done(run_id))
    loops = Run.objects.filter(pk=run_id).values_list("loops", flat=True).first() or {}
    memo.loop_states = {
        loop_id: state["state"]
        for loop_id, state in loops.items()
        if isinstance(state, dict) and state.get("state")
    }
    return memo


def _failures(run_id: Any, where: Q | None = None) -> dict[str, ItemFailure]:
    return {
        key: ItemFailure(block or None, error)
        for key, block, error in ItemRun.objects.filter(
            where or Q(), run_id=run_id, status="failed"
        )
        .values_list("key", "failed_block", "error")
        .order_by()
        .iterator(CHUNK)
    }


def memo_for_loop(run_id: Any, graph: Graph, loop_name: str) -> Memo:
    """What a distributed loop's chunks did: every item's succeeded steps, failures and done
    items (the items' keys all start with the loop's name at the top level)."""
    within = Q(item_key__startswith=f"{loop_name}[")
    items = Q(key__startswith=f"{loop_name}[")
    found = _steps(run_id, _loops(graph), within)
    return Memo(found, _failures(run_id, items), _done(run_id, items))


def memo_for_items(
    run_id: Any, loop_name: str, indexes: Sequence[int], outputs: bool = True
) -> Memo:
    """What some of a distributed top-level loop's items did (a slice the loop composes):
    their own succeeded steps (without their outputs unless `outputs`) and their failures
    (not their inner loops' items).

    Without outputs a step is two short strings, so the loop asks for all its items at once;
    they are then read by the loop's key prefix and picked here: a list of ten thousand keys
    to match costs the server more than the rows (~40 ms per thousand, at 10,000 items the
    most of a worker's tail after the last item)."""
    keys = {f"{loop_name}[{index}]" for index in indexes}
    if outputs:
        return Memo(_steps(run_id, set(), Q(item_key__in=keys)), _failures(run_id, Q(key__in=keys)))
    steps = _steps(run_id, set(), Q(item_key__startswith=f"{loop_name}["), outputs=False)
    failures = _failures(run_id, Q(key__startswith=f"{loop_name}["))
    return Memo(
        {key: step for key, step in steps.items() if key[0] in keys},
        {key: failure for key, failure in failures.items() if key in keys},
    )


def memo_for_chunk(
    run_id: Any, graph: Graph, item_keys: list[str], again: bool, retry_of: Any = None
) -> Memo:
    """A chunk's memo: the top-level steps it starts from and — when the chunk ran before
    (`again`) — what its own items did (they and their inner loops' items). A retry's chunk
    also reuses what its items did in the run it retries (as `memo_for_retry` does)."""
    mine = Q(pk__in=[])
    items = Q(pk__in=[])
    for key in item_keys:
        mine |= Q(item_key=key) | Q(item_key__startswith=f"{key}/")
        items |= Q(key=key) | Q(key__startswith=f"{key}/")
    memo = Memo()
    if retry_of is not None:
        skip = _loops(graph) | downstream_of_loops(graph)
        memo = Memo(_steps(retry_of, skip, mine, carried=True), {}, _done(retry_of, items))
    # This run's own rows come last: they are the newer word on each step.
    memo.steps.update(
        _steps(run_id, _loops(graph), Q(item_key="") | (mine if again else Q(pk__in=[])))
    )
    if again:
        memo.failures.update(_failures(run_id, items))
        memo.done.update(_done(run_id, items))
    return memo


def memo_for_retry(source_id: Any, graph: Graph) -> Memo:
    """The source run's succeeded steps, except what reads a loop's output (computed again
    from the whole batch): failed items run again from their failed step."""
    skip = _loops(graph) | downstream_of_loops(graph)
    return Memo(_steps(source_id, skip, carried=True), {}, _done(source_id))
