"""Finds runs nobody executes any more (engine/leases.py) and executes them again here."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connections

from engine import leases

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


class Resumer:
    """Looks for interrupted runs at start and every KLYNTOS_RUN_RESUME_POLL_SECONDS, on a
    thread of its own (`make run` starts one; so does every worker)."""

    def __init__(self, poll_seconds: float | None = None) -> None:
        self.poll = poll_seconds or settings.KLYNTOS_RUN_RESUME_POLL_SECONDS
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Resumer:
        self.thread = threading.Thread(target=self.serve, name="klyntos-resumer", daemon=True)
        self.thread.start()
        return self

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                resume_interrupted()
            except Exception:  # a database hiccup must not end the look-out
                log.exception("the look for interrupted runs failed")
            finally:
                connections.close_all()
            self.stopping.wait(self.poll)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)
