"""Hands a committed-to-be run to whoever executes runs here (KLYNTOS_EXECUTOR)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction


def submit_run(run_id: Any) -> None:
    """Call inside the transaction that creates the run. Inline: the in-process executor
    takes it once committed. Workers: a job is deferred in this same transaction, so a run
    and its job exist together or not at all."""
    if settings.KLYNTOS_EXECUTOR == "workers":
        from engine.jobs import run_job

        run_job.defer(run_id=str(run_id))
        return
    from engine.runner import executor

    transaction.on_commit(lambda: executor.submit(run_id))
