"""A cancel that ends the run in the database itself (the run is on another process, or its
executor did not stop within the wait): the final status comes with counters that add up."""

from __future__ import annotations

from typing import Any

import pytest

from builder import services
from engine.models import ItemRun, LoopChunk, Run


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


@pytest.mark.django_db
def test_a_cancel_after_the_coordinator_died_counts_the_chunks_item_rows_and_ends_them(
    lead_workflow: Any,
) -> None:
    """A chunked run whose coordinator died: its counters lag what the chunks stored. The
    cancel counts the item rows (the larger of the two), ends the rows still running and
    the chunks, and the numbers add up to the total."""
    run, _ = services.run_create(
        workflow=lead_workflow, input={"leads": []}, trigger="api", announce=False
    )
    Run.objects.filter(pk=run.pk).update(
        status="running", total=10, succeeded=2, failed=0, running=2, cancelled=0
    )
    statuses = ["succeeded"] * 4 + ["failed", "running", "running"]
    for index, status in enumerate(statuses):
        ItemRun.objects.create(
            run=run, key=f"loop[{index}]", loop_block="loop", index=index, status=status
        )
    ItemRun.objects.create(  # an inner loop's item: counted by its parent, ended too
        run=run, key="loop[5].inner[0]", parent_key="loop[5]", loop_block="inner", index=0
    )
    for number, status in enumerate(["running", "queued", "done"]):
        LoopChunk.objects.create(
            run=run, loop_block="loop", number=number, indexes=[number], status=status
        )
    run.refresh_from_db()

    ended = services.run_cancel(run=run, wait=0)

    counts = (ended.succeeded, ended.failed, ended.cancelled, ended.not_started, ended.running)
    assert (ended.status, counts) == ("cancelled", (4, 1, 2, 3, 0))
    assert sum(counts) == ended.total == 10
    assert not ItemRun.objects.filter(run=run, status="running").exists()
    cancelled = ItemRun.objects.filter(run=run, status="cancelled")
    assert cancelled.count() == 3
    assert {i.error for i in cancelled} == {"cancelled while running: the run ended"}
    assert (
        list(LoopChunk.objects.filter(run=run).values_list("status", "lease_owner"))
        == [("done", "")] * 3
    )
    assert services.run_cancel(run=ended, wait=0).status == "cancelled"  # ended: as it is
