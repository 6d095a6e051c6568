"""python manage.py scheduler — fires schedule triggers from a process of its own.

`make run` already runs a scheduler inside the web process; run this where the web process
is not the one that should start scheduled runs (any number of them: each tick starts one
run). Runs it starts execute in this process's executor. Stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from builder.schedules import Scheduler, fire_due, start_deferred


class Command(BaseCommand):
    help = "Start the runs of due schedule triggers, until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="fire what is due now, wait for those runs, exit"
        )

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        from engine.runner import executor

        if once:
            runs = fire_due()
            deferred = start_deferred()
            for run_id in [*(run.pk for run in runs), *deferred]:
                executor.wait(run_id)
            self.stdout.write(
                f"started {len(runs)} scheduled run(s) and {len(deferred)} deferred run(s)"
            )
            return
        scheduler = Scheduler()
        signal.signal(signal.SIGTERM, lambda *_: scheduler.stopping.set())
        self.stdout.write("scheduler: looking for due schedules and deferred runs (Ctrl-C to stop)")
        self.stdout.flush()
        try:
            scheduler.serve()
        except KeyboardInterrupt:
            pass
        # The runs it started execute here: let them end before the process does.
        left = executor.drain(settings.KLYNTOS_DRAIN_SECONDS)
        self.stdout.write(f"scheduler: stopped ({left} run(s) still running)")
