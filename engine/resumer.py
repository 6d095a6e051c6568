"""Finds runs nobody executes any more (engine/leases.py) and executes them again here."""

from __future__ import annotations

import logging

from django.conf import settings

from engine import leases
from engine.polling import Poller

log = logging.getLogger(__name__)


def resume_interrupted(limit: int = 100) -> int:
    """Hand every resumable run to this process's executor; returns how many."""
    from engine.runner import executor

    found = leases.resumable(limit, exclude=executor.running_ids())
    for run_id in found:
        executor.submit(run_id)
    if found:
        log.warning("resuming %d interrupted run(s)", len(found))
    return len(found)


class Resumer(Poller):
    """Looks for interrupted runs at start and every KLYNTOS_RUN_RESUME_POLL_SECONDS, on a
    thread of its own (`make run` starts one)."""

    name = "klyntos-resumer"
    what = "look for interrupted runs"

    def __init__(self, poll_seconds: float | None = None) -> None:
        super().__init__(poll_seconds or settings.KLYNTOS_RUN_RESUME_POLL_SECONDS)

    def look(self) -> None:
        resume_interrupted()
