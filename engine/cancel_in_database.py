"""A cancel that ends a run in the database itself: no process stopped it within the wait
(its coordinator died, or it runs on a worker that did not answer in time).

The run's counters are the coordinator's last write; with its loop in chunks on several
workers they lag the item rows the chunks wrote (a dead coordinator's by everything done
since). So each count is the larger of the counter and the item rows' (top-level items,
written with the chunks' counters in one transaction), the items in flight become cancelled
(the rows too), the rest not started, and the sum is the total, as a final status promises.
The run's chunks are ended, so none stays `running` or `queued` under a cancelled run (a
chunk is never claimed for a final run anyway). A process still executing the run writes
nothing more: its stores' updates select live runs only.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from engine.models import FINAL_STATUSES, ItemRun, LoopChunk, Run, RunStatus
from engine.store import STRAY_ITEM

CHUNK_ENDED = "the run was cancelled"


def cancel_in_database(run_id: Any) -> bool:
    """End the run as cancelled with counters that add up; False when it had ended."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in FINAL_STATUSES:
            return False
        rows = dict(
            ItemRun.objects.filter(run_id=run_id, parent_key="")
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        succeeded = max(run.succeeded, rows.get("succeeded", 0))
        failed = max(run.failed, rows.get("failed", 0))
        cancelled = max(run.cancelled, rows.get("cancelled", 0))
        cancelled += max(run.running, rows.get("running", 0))
        ended = succeeded + failed + cancelled
        total = max(run.total, ended)
        now = timezone.now()
        Run.objects.filter(pk=run_id).update(
            status=RunStatus.CANCELLED,
            finished_at=now,
            total=total,
            succeeded=succeeded,
            failed=failed,
            cancelled=cancelled,
            not_started=total - ended,
            running=0,
        )
        ItemRun.objects.filter(run_id=run_id, status="running").update(
            **STRAY_ITEM, finished_at=now
        )
        LoopChunk.objects.filter(run_id=run_id).exclude(status=LoopChunk.Status.DONE).update(
            status=LoopChunk.Status.DONE,
            lease_owner="",
            lease_expires=None,
            error=CHUNK_ENDED,
        )
    return True
