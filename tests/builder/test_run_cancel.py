"""A cancel that ends the run in the database itself (the run is on another process, or its
executor did not stop within the wait): the final status comes with counters that add up."""

from __future__ import annotations

from typing import Any

import pytest

from builder import services
from engine.models import Run


@pytest.mark.django_db
def test_a_cancel_ended_in_the_database_counts_in_flight_as_cancelled_and_the_rest_not_started(
    lead_workflow: Any,
) -> None:
    run, _ = services.run_create(
        workflow=lead_workflow, input={"leads": []}, trigger="api", announce=False
    )
    # Mid-run as its executor (elsewhere: not this process's) last wrote it.
    Run.objects.filter(pk=run.pk).update(
        status="running", total=520, succeeded=170, failed=9, running=10, cancelled=1
    )
    run.refresh_from_db()

    ended = services.run_cancel(run=run, wait=0)

    assert ended.status == "cancelled" and ended.finished_at is not None
    counts = (ended.succeeded, ended.failed, ended.cancelled, ended.not_started, ended.running)
    assert counts == (170, 9, 11, 330, 0)
    assert sum(counts) == ended.total
