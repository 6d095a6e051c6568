"""Provider breakers across real workers (issue 9; engine/breaker_sharing.py): a manual
breaker opened by one worker's run pauses the run another worker takes before it makes a
single call, and the Resume posted to the web side (this process) reaches both workers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from builder import services
from engine.models import ItemRun, LoopChunk, ProviderBreaker, Run
from simulator.testing import RunningSimulator
from tests.engine.management.test_worker import start_workers, started, stop_workers, wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

KEY = "api.clearbit.com"


def clearbit_calls(simulator: RunningSimulator) -> int:
    return int(simulator.control.stats()["requests"].get("clearbit", 0))


def paused_on(run: Run) -> list[str]:
    run.refresh_from_db()
    return [p["provider"] for p in services.run_paused(run)]


def test_a_breaker_one_worker_opens_pauses_the_other_and_one_resume_reaches_both(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_EXECUTOR = "workers"
    simulator.control.configure(
        latency_ms=20, failures=[{"endpoint": "clearbit", "status": 503, "times": 3}]
    )
    # One run per worker at a time: the second run goes to the other worker.
    workers = start_workers(
        simulator,
        concurrency=1,
        KLYNTOS_BREAKER="mode:manual;min_calls:3;window:5;failure_rate:0.5",
        KLYNTOS_BREAKER_SYNC_SECONDS="0.2",
    )
    try:
        first = started(owner, 12)
        wait_until(lambda: paused_on(first) == [KEY], 60, "the first run to pause")
        # Shared within KLYNTOS_BREAKER_SYNC_SECONDS of being written: a call another worker
        # starts inside that window is expected, so the second run starts after it.
        wait_until(
            lambda: ProviderBreaker.objects.filter(key=KEY, state="open").exists(),
            30,
            "the open breaker to be written",
        )
        time.sleep(1.0)  # five sync intervals: the other worker has applied it
        calls = clearbit_calls(simulator)
        second = started(owner, 12)
        wait_until(lambda: paused_on(second) == [KEY], 60, "the second run to pause")
        assert clearbit_calls(simulator) == calls  # paused before its first call
        # An item row that only started is written once it has run for an interval
        # (engine/store.py), which may be after the run row says it paused.
        wait_until(
            lambda: ItemRun.objects.filter(run=second).exists(), 10, "the paused run's items"
        )
        first_worker = set(ItemRun.objects.filter(run=first).values_list("worker", flat=True))
        second_worker = set(ItemRun.objects.filter(run=second).values_list("worker", flat=True))
        assert len(first_worker) == len(second_worker) == 1 and first_worker != second_worker

        resumed = services.run_resume_provider(run=second, provider=KEY)  # the REST path
        assert resumed.pk == second.pk
        wait_until(
            lambda: (
                Run.objects.filter(pk__in=[first.pk, second.pk], status="succeeded").count() == 2
            ),
            90,
            "both runs to finish",
        )
    finally:
        stop_workers(workers)
    for run in (first, second):
        run.refresh_from_db()
        assert (run.status, run.failed, run.succeeded) == ("succeeded", 0, 12)
        assert run.providers[KEY]["breaker"]["state"] == "closed"


def test_a_run_whose_loop_goes_out_in_chunks_shows_the_pause_and_its_resume_ends_it(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """The breaker its chunks' items met reaches the run's row (`providers`), wherever they
    run: the run says it is paused, and the Resume posted for it ends the pause (before, a
    manual breaker left a chunked run waiting with `paused: []` and Resume refused)."""
    settings.KLYNTOS_EXECUTOR = "workers"
    simulator.control.configure(
        latency_ms=20, failures=[{"endpoint": "clearbit", "status": 503, "times": 3}]
    )
    workers = start_workers(
        simulator,
        concurrency=4,
        KLYNTOS_BREAKER="mode:manual;min_calls:3;window:5;failure_rate:0.5",
        KLYNTOS_BREAKER_SYNC_SECONDS="0.2",
        KLYNTOS_LOOP_CHUNK_SIZE="20",
        KLYNTOS_LOOP_CHUNKS_PER_WORKER="10000",
    )
    try:
        run = started(owner, 120)
        wait_until(lambda: paused_on(run) == [KEY], 60, "the chunked run to pause")
        assert LoopChunk.objects.filter(run=run).count() == 6  # its items went out in chunks
        resumed = services.run_resume_provider(run=run, provider=KEY)  # the REST path
        assert resumed.pk == run.pk
        wait_until(lambda: Run.objects.get(pk=run.pk).status == "succeeded", 90, "the run")
    finally:
        stop_workers(workers)
    run.refresh_from_db()
    assert (run.failed, run.succeeded) == (0, 120)
    assert run.providers[KEY]["breaker"]["state"] == "closed"
    assert services.run_paused(run) == []
