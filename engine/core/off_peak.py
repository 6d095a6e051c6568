"""The off-peak window a low-priority run can be deferred to (issue 9 item 4):
KLYNTOS_OFF_PEAK_HOURS ("22:00-06:00", local hours of KLYNTOS_OFF_PEAK_TZ), parsed once, and
the moment a run deferred at `now` starts. Pure: the clock is always passed in."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# What a run's start asks for to be deferred (`defer`), the only value so far.
DEFER_OFF_PEAK = "off_peak"


class OffPeakError(ValueError):
    """A window or a time zone that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class OffPeak:
    start: dt.time
    end: dt.time
    zone: ZoneInfo

    @classmethod
    def parse(cls, hours: str, zone: str = "UTC") -> OffPeak | None:
        """`HH:MM-HH:MM` in `zone` (an IANA name); the end may be past midnight (22:00-06:00).
        None when `hours` is empty (no window: nothing can be deferred)."""
        if not hours or not hours.strip():
            return None
        found = _HOURS.match(hours)
        if found is None:
            raise OffPeakError(
                f"KLYNTOS_OFF_PEAK_HOURS must be 'HH:MM-HH:MM' (e.g. 22:00-06:00), got {hours!r}"
            )
        h1, m1, h2, m2 = (int(x) for x in found.groups())
        if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
            raise OffPeakError(f"KLYNTOS_OFF_PEAK_HOURS: {hours!r} is not a time of day range")
        start, end = dt.time(h1, m1), dt.time(h2, m2)
        if start == end:
            raise OffPeakError(
                f"KLYNTOS_OFF_PEAK_HOURS: {hours!r} starts where it ends (an empty window)"
            )
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise OffPeakError(
                f"KLYNTOS_OFF_PEAK_TZ: {zone!r} is not an IANA time zone (e.g. Europe/Paris)"
            ) from None
        return cls(start, end, tz)

    def contains(self, now: dt.datetime) -> bool:
        """Whether `now` (aware) falls in the window."""
        local = now.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # past midnight

    def next_start(self, now: dt.datetime) -> dt.datetime:
        """When a run deferred at `now` (aware) starts: `now` inside the window, else the
        window's next opening, in UTC."""
        if self.contains(now):
            return now.astimezone(dt.UTC)
        local = now.astimezone(self.zone)
        for days in range(3):
            day = local.date() + dt.timedelta(days=days)
            opening = dt.datetime.combine(day, self.start, tzinfo=self.zone)
            if opening > now:
                return opening.astimezone(dt.UTC)
        raise AssertionError("a daily window opens within two days")  # pragma: no cover

    def describe(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}"
