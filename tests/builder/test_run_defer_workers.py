"""A deferred run with KLYNTOS_EXECUTOR=workers: no worker (nor its look-out for interrupted
runs) takes it before its window; when the scheduler's look finds it due, it defers the run's
job in the same transaction and a worker executes it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from builder import services
from engine.models import Run, RunStatus
from simulator.testing import RunningSimulator
from tests.engine.conftest import owner, simulator
from tests.engine.management.test_worker import LEASE, start_workers, stop_workers, wait_until
from tests.engine.test_resume import lookups

__all__ = ["owner", "simulator"]

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

NOW = dt.datetime(2026, 12, 3, 14, 35, tzinfo=dt.UTC)
OPENS = dt.datetime(2026, 12, 3, 22, 0, tzinfo=dt.UTC)


def test_on_workers_a_deferred_run_becomes_a_job_when_its_window_opens(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_EXECUTOR = "workers"
    settings.KLYNTOS_OFF_PEAK_HOURS = "22:00-06:00"
    settings.KLYNTOS_OFF_PEAK_TZ = "UTC"
    template = lookups(owner, 6)  # created queued, never started: only its workflow is used
    Run.objects.filter(pk=template.pk).delete()
    workflow = owner.workflows.get(pk=template.workflow_id)
    run, _ = services.run_start(
        workflow=workflow, input=template.input, options={"defer": "off_peak"}, now=NOW
    )
    assert (run.status, run.deferred_until) == (RunStatus.DEFERRED, OPENS)
    workers = start_workers(simulator, count=1)
    try:
        # Past a lease and a few look-outs: a queued run this old would have been resumed.
        time.sleep(LEASE + 2)
        assert Run.objects.get(pk=run.pk).status == RunStatus.DEFERRED
        assert services.run_start_deferred(now=OPENS) == [run.pk]
        wait_until(
            lambda: Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED,
            90,
            "the deferred run on the worker",
        )
    finally:
        stop_workers(workers)
    done = Run.objects.get(pk=run.pk)
    assert (done.total, done.succeeded) == (6, 6)
