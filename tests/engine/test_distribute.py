"""One run's loop spread over two real workers in chunks (engine/distribute.py): every item
runs once, on both workers, the fan-in is counted in the database, and the block after the
loop runs once with the whole batch's output."""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from builder import services
from builder.gallery import template_instantiate
from engine.models import ItemRun, LoopChunk, Run
from simulator.testing import RunningSimulator, peak_concurrency
from tests.engine.management.test_worker import (
    LEASE,
    POLL,
    listen,
    start_workers,
    started,
    stop_workers,
    wait_until,
)
from tests.engine.test_lead_template import make_leads
from tests.engine.test_resume import CAP, calls_by_domain
from tests.leads.rows import rows_by_lead

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ITEMS = 120
CHUNK = 20
# Chunks of CHUNK items whatever the live workers (sizing by them: tests/engine/test_chunks.py).
FIXED_CHUNKS = {"KLYNTOS_LOOP_CHUNK_SIZE": str(CHUNK), "KLYNTOS_LOOP_CHUNKS_PER_WORKER": "10000"}
LEADS = 1_000


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
    workers = start_workers(simulator, **FIXED_CHUNKS)
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
    workers = start_workers(simulator, **FIXED_CHUNKS)
    try:
        run = started(owner, ITEMS)
        wait_until(
            lambda: ItemRun.objects.filter(run=run, status="succeeded").count() >= ITEMS // 2,
            120,
            "half of the run",
        )
        running = ItemRun.objects.filter(run=run, status="running").values_list("worker")
        wait_until(lambda: running.exists(), 60, "an item in flight")  # between two items
        holder = running.first()[0]  # type: ignore[index]
        victim = next(w for w in workers if holder.endswith(f":{w.pid}"))
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


def template_workers(simulator: RunningSimulator, settings: Any) -> list[Any]:
    """Two workers that take 10 items each at once, chunks of 100 (1,000 leads: 10). Calls
    take 200 ms: long beside a slot's hand-over (a statement), so the cap is reached even on
    a loaded machine (at 100 ms, with four test suites on two cores, a peak of 8 was seen)."""
    settings.KLYNTOS_EXECUTOR = "workers"
    simulator.control.configure(latency_ms=200)
    return start_workers(
        simulator,
        concurrency=10,
        KLYNTOS_LOOP_CHUNK_SIZE="100",
        KLYNTOS_LOOP_CHUNKS_PER_WORKER="10000",
    )


def template_run(owner: Any) -> Run:
    workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    run, _ = services.run_start(workflow=workflow, input={"leads": make_leads(LEADS)})
    return run


def test_1000_leads_through_the_template_on_two_workers_hold_the_loop_cap_cluster_wide(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """The issue's acceptance: 1 web (this process) + 2 workers, 1,000 leads through the
    shipped template. Each lookup sees exactly the loop's cap (10) in flight at its peak —
    not 10 per worker — both workers ran items, every lead succeeded and was stored once,
    one Slack post, and an editor connected here heard live progress."""
    workers = template_workers(simulator, settings)
    # The lookups answer nothing until released: the calls let through pile up to the cap,
    # whatever the machine's load, and stay there (an exact peak from timings alone also
    # needs all ten items to be in their lookup at one moment, which a busy CI misses).
    lookups = ("clearbit", "linkedin")
    simulator.control.configure(hold=[{"endpoint": name} for name in lookups])

    def held() -> list[int]:
        return [simulator.control.stats()["held"][name] for name in lookups]

    try:
        run = template_run(owner)
        wait_until(lambda: held() == [10, 10], 120, "10 lookups of each held")
        time.sleep(1)  # the other items, on both workers, keep waiting: nobody passes the cap
        assert held() == [10, 10]
        simulator.control.release()
        heard = async_to_sync(listen)(owner, run.pk, within=600)
        wait_until(lambda: Run.objects.get(pk=run.pk).finished_at is not None, 240, "the end")
    finally:
        simulator.control.release()
        stop_workers(workers)
    done = Run.objects.get(pk=run.pk)
    failed = ItemRun.objects.filter(run=run).exclude(status="succeeded")
    assert done.status == "succeeded", (done.error, list(failed.values("key", "error")[:3]))
    assert (done.total, done.succeeded, done.failed) == (LEADS, LEADS, 0)
    assert LoopChunk.objects.filter(run=run, status="done").count() == LEADS // 100
    by_worker = Counter(ItemRun.objects.filter(run=run).values_list("worker", flat=True))
    assert len(by_worker) == 2 and sum(by_worker.values()) == LEADS, by_worker
    assert len(rows_by_lead(owner)) == LEADS
    received = simulator.control.stats()["received"]
    for endpoint in ("clearbit", "linkedin"):
        calls = [r for r in received if r.get("endpoint") == endpoint]
        assert len(calls) == LEADS
        peak, _, _ = peak_concurrency(calls)
        assert peak == 10, (endpoint, peak)  # reached while held, never passed after
    assert simulator.control.stats()["requests"].get("slack") == 1
    assert heard["deltas"] >= 3 and heard["ended"], heard
    assert heard["progress"] and max(heard["progress"]) > 0  # counts moved while it ran
    # The items too, though the chunks ran them on the workers: rows from both workers'
    # chunks reached the editor live, in frames that stay bounded (issue 6).
    assert len(heard["workers"]) == 2, heard["workers"]
    assert len(heard["items"]) >= 100, len(heard["items"])
    assert heard["largest"] < 65_536


def test_kill_9_of_the_coordinating_worker_at_half_of_1000_leads_loses_nothing(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """The issue's acceptance: kill -9 one of two workers at ~50 % — here the one that
    coordinates the run (and runs chunks): the other resumes the run once its lease ran
    out, takes up the dead worker's chunks, and every lead succeeds once."""
    workers = template_workers(simulator, settings)
    try:
        run = template_run(owner)
        wait_until(
            lambda: ItemRun.objects.filter(run=run, status="succeeded").count() >= LEADS // 2,
            300,
            "half of the leads",
        )
        coordinator = Run.objects.get(pk=run.pk).lease_owner
        victim = next(w for w in workers if f":{w.pid}:" in coordinator)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: Run.objects.get(pk=run.pk).finished_at is not None, 300, "the end")
        took = time.monotonic() - killed_at
    finally:
        stop_workers(workers)
    done = Run.objects.get(pk=run.pk)
    assert done.status == "succeeded", done.error
    assert (done.succeeded, done.failed, done.resumes) == (LEADS, 0, 1)
    assert len(rows_by_lead(owner)) == LEADS
    stats = simulator.control.stats()["requests"]
    assert stats.get("slack") == 1
    # Repeated calls: what was in flight at the kill (the loop's cap, 10, cluster-wide) and
    # what had finished within the dead worker's last unwritten 100 ms of rows.
    for endpoint in ("clearbit", "linkedin"):
        assert LEADS <= stats[endpoint] <= LEADS + 2 * 10, (endpoint, stats[endpoint])
    assert took < LEASE + POLL + 120, took
    print(f"kill -9 at half: finished {took:.1f} s after; calls {stats}")  # for the notes


def test_a_sigterm_of_the_coordinating_worker_repeats_no_finished_item(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """A deploy's graceful stop gives the coordinator's chunks back mid-way: the worker that
    takes them up reads their stored items back (a stop is not counted as an execution, but
    what it stored is), so only what was in flight is called again."""
    workers = template_workers(simulator, settings)
    try:
        run = template_run(owner)
        wait_until(
            lambda: ItemRun.objects.filter(run=run, status="succeeded").count() >= LEADS // 3,
            300,
            "a third of the leads",
        )
        coordinator = Run.objects.get(pk=run.pk).lease_owner
        victim = next(w for w in workers if f":{w.pid}:" in coordinator)
        victim.send_signal(signal.SIGTERM)
        victim.wait(timeout=120)
        wait_until(lambda: Run.objects.get(pk=run.pk).finished_at is not None, 300, "the end")
    finally:
        stop_workers(workers)
    done = Run.objects.get(pk=run.pk)
    assert done.status == "succeeded", done.error
    assert (done.succeeded, done.failed) == (LEADS, 0)
    assert len(rows_by_lead(owner)) == LEADS
    stats = simulator.control.stats()["requests"]
    assert stats.get("slack") == 1
    # What was in flight when the stop came (the cap, 10, on each of the two workers at
    # most), never the chunks' finished items (before: 29 to 139 leads ran again).
    for endpoint in ("clearbit", "linkedin"):
        assert LEADS <= stats[endpoint] <= LEADS + 2 * 10, (endpoint, stats[endpoint])
    print(f"SIGTERM at a third: calls {stats}")  # for the notes


def test_a_retry_of_a_distributed_run_repeats_only_the_failed_items_steps(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """Retry failed on workers: the retry's loop goes out in chunks too, and each chunk
    reuses what its items did in the run it retries."""
    settings.KLYNTOS_EXECUTOR = "workers"
    failing = [5, 27, 60, 99, 118]
    simulator.control.configure(
        latency_ms=20,
        failures=[
            {"endpoint": "clearbit", "match": {"domain": f"d{i}.io"}, "status": 404}
            for i in failing
        ],
    )
    workers = start_workers(simulator, **FIXED_CHUNKS)
    try:
        first = started(owner, ITEMS)
        wait_until(lambda: Run.objects.get(pk=first.pk).finished_at is not None, 120, "first")
        assert Run.objects.get(pk=first.pk).failed == len(failing)
        simulator.control.reset(latency_ms=20)  # the provider is fixed; counts start again
        retry = services.run_retry_failed(run=Run.objects.get(pk=first.pk))
        wait_until(lambda: Run.objects.get(pk=retry.pk).finished_at is not None, 120, "retry")
    finally:
        stop_workers(workers)
    done = Run.objects.get(pk=retry.pk)
    assert (done.status, done.succeeded, done.failed) == ("succeeded", ITEMS, 0), done.error
    assert LoopChunk.objects.filter(run=done).count() == ITEMS // CHUNK
    clearbit = calls_by_domain(simulator, "clearbit")
    assert clearbit == Counter({f"d{i}.io": 1 for i in failing})  # nothing else repeated
    assert [q.get("n") for q in after_calls(simulator)] == [str(ITEMS)]
