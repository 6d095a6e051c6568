"""The off-peak window (engine/core/off_peak.py): parsing, membership, the next opening."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from engine.core.off_peak import OffPeak, OffPeakError

PARIS = ZoneInfo("Europe/Paris")


def at(text: str, zone: ZoneInfo = PARIS) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone)


def test_a_window_past_midnight_in_its_zone() -> None:
    window = OffPeak.parse("22:00-06:00", "Europe/Paris")
    assert window is not None and window.describe() == "22:00-06:00 Europe/Paris"
    assert window.contains(at("2026-12-03 23:30"))
    assert window.contains(at("2026-12-04 05:59"))
    assert not window.contains(at("2026-12-04 06:00"))
    assert not window.contains(at("2026-12-03 21:59"))
    # 14:35 UTC is 15:35 in Paris: the window opens at 22:00 Paris, 21:00 UTC.
    now = dt.datetime(2026, 12, 3, 14, 35, tzinfo=dt.UTC)
    assert window.next_start(now) == dt.datetime(2026, 12, 3, 21, 0, tzinfo=dt.UTC)
    # Inside it: now.
    late = dt.datetime(2026, 12, 3, 22, 0, tzinfo=dt.UTC)
    assert window.next_start(late) == late


def test_a_window_within_one_day_opens_tomorrow_once_it_has_passed() -> None:
    window = OffPeak.parse("01:00-05:00", "UTC")
    assert window is not None
    now = dt.datetime(2026, 12, 3, 14, 35, tzinfo=dt.UTC)
    assert window.next_start(now) == dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)
    early = dt.datetime(2026, 12, 3, 0, 30, tzinfo=dt.UTC)
    assert window.next_start(early) == dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)


def test_the_opening_follows_daylight_saving_time() -> None:
    window = OffPeak.parse("22:00-06:00", "Europe/Paris")
    assert window is not None
    # Summer: Paris is UTC+2, so 22:00 there is 20:00 UTC.
    summer = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    assert window.next_start(summer) == dt.datetime(2026, 7, 1, 20, 0, tzinfo=dt.UTC)


def test_no_hours_no_window() -> None:
    assert OffPeak.parse("", "UTC") is None


@pytest.mark.parametrize(
    ("hours", "zone", "says"),
    [
        ("22-6", "UTC", "KLYNTOS_OFF_PEAK_HOURS must be 'HH:MM-HH:MM'"),
        ("25:00-06:00", "UTC", "is not a time of day range"),
        ("06:00-06:00", "UTC", "starts where it ends"),
        ("22:00-06:00", "Mars/Olympus", "KLYNTOS_OFF_PEAK_TZ: 'Mars/Olympus' is not an IANA"),
    ],
)
def test_a_window_that_cannot_work_says_why(hours: str, zone: str, says: str) -> None:
    with pytest.raises(OffPeakError, match=says):
        OffPeak.parse(hours, zone)
