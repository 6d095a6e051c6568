"""Schedule trigger: starts the workflow's published version at the times of a cron
expression in a time zone, with an optional fixed input. The builder's scheduler fires it
(builder/schedules.py); the block itself hands the run's input to the next blocks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from engine.blocks.base import BaseBlock, config_schema
from engine.core.cron import CronError, Schedule
from engine.core.limits import GraphLimits
from engine.core.schemas import JsonSchema, obj
from engine.core.spec import BlockContext


class ScheduleBlock(BaseBlock):
    type = "schedule"
    label = "Schedule"
    description = "Starts the workflow on a cron schedule (e.g. every night at 02:00)."
    icon = "schedule"
    test_effect = "gives the input a tick would give; nothing is sent"
    config_schema = config_schema(
        {
            "cron": {
                "type": "string",
                "title": "Cron expression",
                "description": "minute hour day-of-month month day-of-week, e.g. 0 2 * * *",
            },
            "timezone": {"type": "string", "title": "Time zone", "default": "UTC"},
            "input": {"type": "object", "title": "Fixed input (JSON)"},
        },
        required=["cron"],
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        fixed = config.get("input")
        properties: dict[str, JsonSchema] = (
            {str(k): {} for k in fixed} if isinstance(fixed, Mapping) else {}
        )
        return obj(
            {
                "scheduled_for": {"type": "string", "format": "date-time"},
                "input": obj(properties) if properties else {"type": "object"},
            }
        )

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        try:
            Schedule.parse(config.get("cron", ""), config.get("timezone") or "UTC")
        except CronError as exc:
            field = "timezone" if "time zone" in str(exc) else "cron"
            return [(field, str(exc))]
        return []

    def check_limits(self, config: Mapping[str, Any], limits: GraphLimits) -> list[tuple[str, str]]:
        try:
            schedule = Schedule.parse(config.get("cron", ""), config.get("timezone") or "UTC")
        except CronError:
            return []  # check() reports it
        gap = schedule.shortest_gap(dt.datetime.now(dt.UTC))
        if gap < limits.min_schedule_seconds:
            return [
                (
                    "cron",
                    f"fires every {gap:g} s; the shortest interval is"
                    f" {limits.min_schedule_seconds} s (KLYNTOS_SCHEDULE_MIN_SECONDS)",
                )
            ]
        return []

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        run_input = ctx.run_input if isinstance(ctx.run_input, Mapping) else {}
        fixed = ctx.raw_config.get("input")
        return {
            "scheduled_for": run_input.get("scheduled_for"),
            "input": run_input.get("input", fixed if isinstance(fixed, Mapping) else {}),
        }
