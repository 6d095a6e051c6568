"""One run's loop spread over two real workers in chunks (engine/distribute.py): every item
runs once, on both workers, the fan-in is counted in the database, and the block after the
loop runs once with the whole batch's output."""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest

from engine.models import ItemRun, LoopChunk, Run
from simulator.testing import RunningSimulator
from tests.engine.management.test_worker import (
    LEASE,
    POLL,
    start_workers,
    started,
    stop_workers,
    wait_until,
)
from tests.engine.test_resume import CAP, calls_by_domain

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ITEMS = 120
CHUNK = 20


def after_calls(simulator: RunningSimulator) -> list[dict[str, Any]]:
    received = simulator.control.stats()["received"]
    return [
        r["query"]
        for r in received
        if r.get("endpoint") == "linkedin" and (r.get("query") or {}).get("domain") == "after.io"
    ]


def test_a_loop_goes_out_in_chunks_to_both_workers_and_fans_in_once(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_EXECUTOR = "workers"
    simulator.control.configure(latency_ms=50)
    workers = start_workers(simulator, KLYNTOS_LOOP_CHUNK_SIZE=str(CHUNK))
    try:
        run = started(owner, ITEMS)
        wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded", 120, "the run")
    finally:
        stop_workers(workers)
    done = Run.objects.get(pk=run.pk)
    assert (done.total, done.succeeded, done.failed, done.running) == (ITEMS, ITEMS, 0, 0)
    chunks = list(LoopChunk.objects.filter(run=run).values_list("status", "executions"))
    assert chunks == [("done", 1)] * (ITEMS // CHUNK)
    by_worker = Counter(ItemRun.objects.filter(run=run).values_list("worker", flat=True).iterator())
    assert sum(by_worker.values()) == ITEMS and len(by_worker) == 2, by_worker
    clearbit = calls_by_domain(simulator, "clearbit")
    assert clearbit == Counter({f"d{i}.io": 1 for i in range(ITEMS)})  # each item once
    # The block after the loop ran once, reading the whole batch's count.
    assert [q.get("n") for q in after_calls(simulator)] == [str(ITEMS)]
    assert done.outputs["loop"]["succeeded"] == ITEMS


def test_a_killed_worker_s_chunks_are_taken_up_by_the_other_and_every_item_runs_once(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """kill -9 of one of two workers halfway: its chunks' leases run out, the coordinator
    (or, when the coordinator was the one killed, the worker that resumes the run) defers
    them again, and they resume from their items' rows."""
    settings.KLYNTOS_EXECUTOR = "workers"
    simulator.control.configure(latency_ms=100)
    workers = start_workers(simulator, KLYNTOS_LOOP_CHUNK_SIZE=str(CHUNK))
    try:
        run = started(owner, ITEMS)
        wait_until(
            lambda: ItemRun.objects.filter(run=run, status="succeeded").count() >= ITEMS // 2,
            120,
            "half of the run",
        )
        holder = (
            ItemRun.objects.filter(run=run, status="running")
            .values_list("worker", flat=True)
            .first()
        )
        victim = next(w for w in workers if holder and holder.endswith(f":{w.pid}"))
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded", 180, "the run")
        took = time.monotonic() - killed_at
    finally:
        stop_workers(workers)
    done = Run.objects.get(pk=run.pk)
    assert (done.succeeded, done.failed) == (ITEMS, 0)
    assert ItemRun.objects.filter(run=run, status="succeeded").count() == ITEMS
    assert set(LoopChunk.objects.filter(run=run).values_list("status", flat=True)) == {"done"}
    assert LoopChunk.objects.filter(run=run, executions__gt=1).exists()  # taken up again
    clearbit = calls_by_domain(simulator, "clearbit")
    assert set(clearbit) == {f"d{i}.io" for i in range(ITEMS)}
    # Repeated: at most what was in flight on the killed worker (its chunks' windows).
    repeated = sum(clearbit.values()) - ITEMS
    assert repeated <= 10 * CAP, clearbit
    assert [q.get("n") for q in after_calls(simulator)] == [str(ITEMS)]
    assert took < LEASE + 2 * POLL + ITEMS * 0.2 + 20, took
