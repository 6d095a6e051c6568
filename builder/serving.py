"""Serving the web side, the same for `make run` (run_local) and production (serve): the
schedules fire from this process, runs an earlier process left are resumed (inline
executor), the ASGI server (daphne, through its runserver command) runs until SIGTERM or
Ctrl-C, then the runs in flight drain."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.management import call_command

from builder.schedules import Scheduler
from engine.resumer import Resumer
from klyntos.exit_watchdog import exit_within

log = logging.getLogger("klyntos")


def serve(addr: str) -> None:
    # Schedule triggers fire from this process (one run per tick, whatever else runs one).
    scheduler = Scheduler().start()
    # Runs an earlier process left unfinished (killed, or stopped past its drain time)
    # go on from their stored rows: now, and whenever a lease runs out later. With
    # KLYNTOS_EXECUTOR=workers this process executes nothing: the workers do that.
    inline = settings.KLYNTOS_EXECUTOR == "inline"
    resumer = Resumer().start() if inline else None
    try:
        # The server stops on SIGTERM and Ctrl-C (it handles both) and returns here.
        call_command("runserver", addr, use_reloader=False)
    finally:
        scheduler.stop()
        if resumer is not None:
            resumer.stop()
            drain()
    # Stopped as planned; a request the stop caught mid-way leaves a thread that never ends.
    exit_within()


def drain() -> None:
    """The graceful stop: items in flight finish (up to KLYNTOS_DRAIN_SECONDS), the rest of
    every run is stored as it is and resumes on the next start."""
    from engine.runner import executor

    if executor.running_ids():
        log.warning(
            "stopping: letting the items in flight finish (up to %ss)",
            settings.KLYNTOS_DRAIN_SECONDS,
        )
    left = executor.stop(settings.KLYNTOS_DRAIN_SECONDS)
    if left:
        log.warning("%d run(s) stopped before their items in flight finished", left)
