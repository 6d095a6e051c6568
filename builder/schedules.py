"""Schedule triggers: a published version's schedule block becomes its workflow's schedule,
and the scheduler starts one run per tick of each due schedule.

Once per tick, however many processes run a scheduler: a tick is claimed by moving the
workflow's `schedule_next_at` forward in the same transaction that creates its run, with the
row locked (`SKIP LOCKED` on PostgreSQL: another process takes the next workflow instead of
waiting), and the run's Idempotency-Key is the tick (`schedule:<time>`), so a second claim of
the same tick could only get the first run back. Ticks missed while nothing was running
collapse into one run, for the latest of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.core.cron import CronError, Schedule
from engine.polling import Poller

if TYPE_CHECKING:
    from builder.models import Workflow
    from engine.models import Run

log = logging.getLogger(__name__)
SCHEDULE_TYPE = "schedule"


def schedule_block(graph: Any) -> Mapping[str, Any] | None:
    blocks = graph.get("blocks") if isinstance(graph, Mapping) else None
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, Mapping) and block.get("type") == SCHEDULE_TYPE:
            config = block.get("config")
            return config if isinstance(config, Mapping) else {}
    return None


def sync_schedule(workflow: Workflow, graph: Any, now: dt.datetime) -> list[str]:
    """Sets the workflow's schedule from the graph being published (clears it when the graph
    has none); returns the fields to save."""
    config = schedule_block(graph)
    cron, zone, next_at = "", "", None
    if config is not None:
        try:
            schedule = Schedule.parse(config.get("cron", ""), config.get("timezone") or "UTC")
        except CronError:
            schedule = None  # validation refuses it first; never publish a broken schedule
        if schedule is not None:
            cron, zone = schedule.expression, str(schedule.zone)
            next_at = next(schedule.after(now))
    workflow.schedule_cron, workflow.schedule_timezone = cron, zone
    workflow.schedule_next_at = next_at
    return ["schedule_cron", "schedule_timezone", "schedule_next_at"]


def next_fires(config: Mapping[str, Any], count: int = 5) -> list[dt.datetime]:
    schedule = Schedule.parse(config.get("cron", ""), config.get("timezone") or "UTC")
    return schedule.next_fires(timezone.now(), count)


def fire_due(now: dt.datetime | None = None) -> list[Run]:
    """Starts one run for each schedule due at `now`; returns the runs started."""
    from builder.models import Workflow

    moment = now or timezone.now()
    due = list(
        Workflow.objects.filter(schedule_next_at__lte=moment)
        .order_by("schedule_next_at")
        .values_list("pk", flat=True)[: settings.KLYNTOS_SCHEDULER_BATCH]
    )
    started = []
    for pk in due:
        run = _fire(pk, moment)
        if run is not None:
            started.append(run)
    return started


def _fire(pk: int, now: dt.datetime) -> Run | None:
    from builder import services
    from builder.models import Workflow

    with transaction.atomic():
        workflow = (
            Workflow.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("published_version", "current_version", "owner")
            .filter(pk=pk, schedule_next_at__lte=now)
            .first()
        )
        if workflow is None:  # another scheduler has it, or its schedule moved
            return None
        due = workflow.schedule_next_at
        if due is None:  # the filter says otherwise; for the type checker
            return None
        try:
            schedule = Schedule.parse(workflow.schedule_cron, workflow.schedule_timezone)
            # Ticks missed while no scheduler ran collapse into the latest of them.
            tick = max(due, schedule.latest_at_or_before(now) or due)
            following: dt.datetime | None = next(schedule.after(max(tick, now)))
        except (CronError, StopIteration):
            tick, following = due, None
        # update(), not save(): a tick is not an edit of the workflow.
        Workflow.objects.filter(pk=pk).update(schedule_next_at=following)
        try:
            run, created = services.run_start(
                workflow=workflow,
                input={"scheduled_for": tick.isoformat()},
                trigger="schedule",
                idempotency_key=f"schedule:{tick.isoformat()}",
            )
        except (services.GraphInvalid, services.RateLimited, services.BodyMismatch) as exc:
            # The tick is spent either way: the next one tries again.
            log.warning("schedule of workflow %s at %s did not start: %s", pk, tick, exc)
            return None
    return run if created else None


def start_deferred() -> list[Any]:
    """Queue the deferred runs whose off-peak window has opened (builder.services)."""
    from builder import services

    started = services.run_start_deferred()
    if started:
        log.info("off-peak window open: started %d deferred run(s)", len(started))
    return started


class Scheduler(Poller):
    """Looks for due schedules, and deferred runs whose off-peak window has opened, every
    KLYNTOS_SCHEDULER_POLL_SECONDS on a thread of its own (`make run` starts one;
    `manage.py scheduler` runs one in any other process)."""

    name = "klyntos-scheduler"
    what = "scheduler's look for due schedules"

    def __init__(self, poll_seconds: float | None = None) -> None:
        super().__init__(poll_seconds or settings.KLYNTOS_SCHEDULER_POLL_SECONDS)

    def look(self) -> None:
        fire_due()
        start_deferred()
