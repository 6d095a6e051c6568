"""Cron schedules: parse an expression in a time zone, the next fire times, the shortest gap
between fires. Five fields (minute hour day month weekday), or six with seconds first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# How many fires the shortest-gap check looks at: enough to see the tightest spacing of
# any expression (a list like "0,1 * * * *" repeats within an hour of minutes).
GAP_SAMPLE = 120
MAX_EXPRESSION_CHARS = 200


class CronError(ValueError):
    """An expression or a time zone that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Schedule:
        if not isinstance(expression, str) or not expression.strip():
            raise CronError("a cron expression is required, e.g. '0 9 * * 1-5'")
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise CronError(f"a cron expression is at most {MAX_EXPRESSION_CHARS} characters")
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise CronError(
                "five fields: minute hour day-of-month month day-of-week"
                " (or six, with seconds first)"
            )
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(
                f"unknown time zone '{timezone}' (an IANA name, e.g. Europe/Paris)"
            ) from None
        schedule = cls(" ".join(fields), zone)
        try:
            next(schedule.after(dt.datetime.now(dt.UTC)))
        except CronSimError as exc:
            raise CronError(f"not a cron expression: {exc}") from None
        except StopIteration:
            raise CronError("this expression never fires") from None
        return schedule

    def after(self, moment: dt.datetime) -> Iterator[dt.datetime]:
        """Fire times strictly after `moment`, in UTC (computed in the schedule's zone, so
        '0 9 * * *' is 09:00 local on both sides of a daylight-saving change)."""
        for fire in CronSim(self.expression, moment.astimezone(self.zone)):
            yield fire.astimezone(dt.UTC)

    def latest_at_or_before(self, moment: dt.datetime) -> dt.datetime | None:
        """The last fire time at or before `moment` (None if it never fired before it)."""
        # Going backwards, CronSim counts the moment itself only when it has microseconds.
        local = moment.astimezone(self.zone)
        local = local.replace(microsecond=max(local.microsecond, 1))
        try:
            return next(iter(CronSim(self.expression, local, reverse=True))).astimezone(dt.UTC)
        except StopIteration:
            return None

    def next_fires(self, moment: dt.datetime, count: int) -> list[dt.datetime]:
        fires = []
        for fire in self.after(moment):
            fires.append(fire)
            if len(fires) == count:
                break
        return fires

    def shortest_gap(self, moment: dt.datetime) -> float:
        """The smallest number of seconds between two fires in the next GAP_SAMPLE."""
        fires = self.next_fires(moment, GAP_SAMPLE)
        gaps = [(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)]
        return min(gaps) if gaps else float("inf")

    def explain(self) -> str:
        try:
            return str(CronSim(self.expression, dt.datetime.now(self.zone)).explain())
        except (CronSimError, ValueError, AttributeError):
            return ""
