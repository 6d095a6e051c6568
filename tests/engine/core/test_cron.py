"""Cron schedules: parsing with clear errors, fire times in a time zone, the shortest gap."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.core.cron import CronError, Schedule

UTC = dt.UTC


def test_fires_strictly_after_the_moment_in_utc() -> None:
    schedule = Schedule.parse("*/15 * * * *")
    start = dt.datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert schedule.next_fires(start, 3) == [
        dt.datetime(2026, 12, 3, 10, 15, tzinfo=UTC),
        dt.datetime(2026, 12, 3, 10, 30, tzinfo=UTC),
        dt.datetime(2026, 12, 3, 10, 45, tzinfo=UTC),
    ]


def test_local_time_holds_across_a_daylight_saving_change() -> None:
    nine_in_paris = Schedule.parse("0 9 * * *", "Europe/Paris")
    fires = nine_in_paris.next_fires(dt.datetime(2026, 3, 27, 12, 0, tzinfo=UTC), 3)
    # 09:00 CET is 08:00 UTC; after the change on 29 March, 09:00 CEST is 07:00 UTC.
    assert [f.hour for f in fires] == [8, 7, 7]
    assert {f.astimezone(nine_in_paris.zone).hour for f in fires} == {9}


def test_shortest_gap_sees_irregular_lists() -> None:
    assert Schedule.parse("0,1 * * * *").shortest_gap(dt.datetime.now(UTC)) == 60
    assert Schedule.parse("0 2 * * *").shortest_gap(dt.datetime.now(UTC)) == 86400
    assert Schedule.parse("*/2 * * * * *").shortest_gap(dt.datetime.now(UTC)) == 2


@pytest.mark.parametrize(
    ("expression", "zone", "says"),
    [
        ("", "UTC", "a cron expression is required"),
        ("* * *", "UTC", "five fields"),
        ("61 * * * *", "UTC", "not a cron expression"),
        ("0 9 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("0 9 * * *", "../../etc/passwd", "unknown time zone"),
        ("0 0 30 2 *", "UTC", "not a cron expression: Bad day-of-month"),
        ("1 " * 150, "UTC", "at most 200 characters"),
    ],
)
def test_bad_expressions_and_zones_say_what_is_wrong(expression: str, zone: str, says: str) -> None:
    with pytest.raises(CronError, match=says):
        Schedule.parse(expression, zone)


def test_latest_fire_at_or_before_a_moment() -> None:
    every_five = Schedule.parse("*/5 * * * *")
    on_a_tick = dt.datetime(2026, 1, 1, 10, 25, tzinfo=UTC)
    assert every_five.latest_at_or_before(on_a_tick) == on_a_tick
    assert every_five.latest_at_or_before(on_a_tick + dt.timedelta(seconds=299)) == on_a_tick
    assert every_five.latest_at_or_before(on_a_tick - dt.timedelta(microseconds=1)) == (
        on_a_tick - dt.timedelta(minutes=5)
    )
