"""Bounded reads of a run's items for the editor (docs/run-protocol.md): one page of items
by keyset cursor or offset with filters and a search, and a timeline (concurrency over time
and a duration histogram). Each answer's size is fixed by its parameters, never by the run's N.
The run is already owner-checked (builder/selectors.py)."""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from engine.models import ItemRun, Run

PAGE_DEFAULT = 50
PAGE_MAX = 200
COUNT_CAP = 100_000
BUCKETS_DEFAULT = 100
BUCKETS_MAX = 500
HISTOGRAM_BINS = 30
ORDER = ("parent_key", "loop_block", "index", "id")


class BadParameter(ValueError):
    """A query parameter the endpoint cannot use; the message names it (400)."""


@dataclass(frozen=True)
class ItemFilters:
    status: str | None = None
    q: str | None = None
    loop: str | None = None
    window: tuple[float | None, float | None] = (None, None)  # seconds since the run started
    durations: tuple[float | None, float | None] = (None, None)


def encode_cursor(row: ItemRun) -> str:
    values = [row.parent_key, row.loop_block, row.index, row.id]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str, int, int]:
    try:
        parent, loop, index, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, TypeError, UnicodeError):
        raise BadParameter("cursor: not a cursor this endpoint gave") from None
    if not (
        isinstance(parent, str)
        and isinstance(loop, str)
        and type(index) is int
        and type(pk) is int
        and abs(index) < 2**31
        and abs(pk) < 2**63
    ):
        raise BadParameter("cursor: not a cursor this endpoint gave")
    return parent, loop, index, pk


def _after(cursor: tuple[str, str, int, int]) -> Q:
    """Rows strictly after the cursor in ORDER (a keyset, so page 1,000 costs what page 1 does)."""
    parent, loop, index, pk = cursor
    return (
        Q(parent_key__gt=parent)
        | Q(parent_key=parent, loop_block__gt=loop)
        | Q(parent_key=parent, loop_block=loop, index__gt=index)
        | Q(parent_key=parent, loop_block=loop, index=index, id__gt=pk)
    )


def _origin(run: Run) -> dt.datetime:
    return run.started_at or run.created_at


def _as_in_json(text: str) -> list[str]:
    """`text` as it can appear inside an item's stored JSON: as typed, and as a JSON string
    writes it (quotes, backslashes and newlines escaped), with non-ASCII characters as they
    are (PostgreSQL's jsonb text) or as \\u escapes (SQLite's JSON text, where a search for
    "Émoji" found nothing). SQLite's LIKE folds ASCII case only, so an escaped search also
    tries the text's lower and upper case."""
    terms = [text, json.dumps(text, ensure_ascii=False)[1:-1]]
    for variant in {text, text.lower(), text.upper()}:
        terms.append(json.dumps(variant)[1:-1])
    return list(dict.fromkeys(terms))


def filtered_items(run: Run, filters: ItemFilters) -> QuerySet[ItemRun]:
    items = ItemRun.objects.filter(run_id=run.pk)
    if filters.status:
        items = items.filter(status=filters.status)
    if filters.loop:
        items = items.filter(loop_block=filters.loop)
    if filters.q:
        found = Q(key__icontains=filters.q)
        for term in _as_in_json(filters.q):
            found |= Q(data__icontains=term)
        items = items.filter(found)
    start, end = filters.window
    origin = _origin(run)
    if start is not None:  # in flight at some moment of [start, end): not finished before start
        items = items.filter(
            Q(finished_at__isnull=True) | Q(finished_at__gte=origin + dt.timedelta(seconds=start))
        ).exclude(started_at__isnull=True)
    if end is not None:
        items = items.filter(started_at__lt=origin + dt.timedelta(seconds=end))
    low, high = filters.durations
    if low is not None:
        items = items.filter(duration__gte=low)
    if high is not None:
        items = items.filter(duration__lt=high)
    return items


def item_page(
    run: Run, filters: ItemFilters, *, limit: int, cursor: str | None, offset: int = 0
) -> tuple[list[ItemRun], str | None, int, bool]:
    """(rows, next cursor, count of matching items, whether the count stopped at its cap).
    A page starts after `cursor` (reading on: as cheap far down as at the top) or at
    `offset` (a jump: its cost grows with it, hence the cap); the next cursor goes on from
    either."""
    if cursor and offset:
        raise BadParameter("offset: give offset or cursor, not both")
    if not 0 <= offset <= COUNT_CAP:
        raise BadParameter(f"offset: between 0 and {COUNT_CAP}")
    items = filtered_items(run, filters)
    count = items.order_by()[: COUNT_CAP + 1].count()
    page = items.order_by(*ORDER)
    if cursor:
        page = page.filter(_after(decode_cursor(cursor)))
    rows = list(page[offset : offset + limit + 1])
    following = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], following, min(count, COUNT_CAP), count > COUNT_CAP


def _seconds(value: dt.datetime | None, origin: dt.datetime) -> float | None:
    return None if value is None else (value - origin).total_seconds()


def timeline(
    run: Run,
    *,
    start: float | None,
    end: float | None,
    buckets: int,
    loop: str | None,
) -> dict[str, Any]:
    """Items in flight per time bucket, plus a histogram of item durations, for a window of
    the run (seconds since it started). One pass over the run's started items.

    A bucket's `in_flight` is the mean number of items in flight during it (each item's time
    inside the bucket, summed, over the bucket's width): it never exceeds the most in flight
    at once, however long the bucket against an item. `overlapping` counts the items in
    flight at some moment of the bucket: the items a click on it lists (`filtered_items`)."""
    origin = _origin(run)
    last = _seconds(run.finished_at or timezone.now(), origin) or 0.0
    start = max(0.0, start or 0.0)
    end = end if end is not None else max(last, start)
    if end <= start:
        end = start + 1.0
    width = (end - start) / buckets
    started = [0] * buckets
    finished = [0] * buckets
    failed = [0] * buckets
    ended_before = [0] * buckets  # finished before each bucket's start: cumulated below
    # Item-time per bucket, in bucket widths: the partial first and last bucket of each item
    # in `partial`, the whole buckets between as a difference array (cumulated below), so an
    # item costs the same whatever its length.
    partial = [0.0] * buckets
    whole = [0] * buckets
    in_flight_at_start = 0
    durations: list[float] = []
    rows = ItemRun.objects.filter(run_id=run.pk, started_at__isnull=False)
    if loop:
        rows = rows.filter(loop_block=loop)
    for began_at, ended_at, status, duration in rows.values_list(
        "started_at", "finished_at", "status", "duration"
    ).iterator(chunk_size=5000):
        began = _seconds(began_at, origin) or 0.0
        ended = _seconds(ended_at, origin)
        if began >= end or (ended is not None and ended < start):
            continue
        if began < start:
            in_flight_at_start += 1
        else:
            started[min(buckets - 1, int((began - start) / width))] += 1
        if ended is not None and ended < end:
            b = min(buckets - 1, int((ended - start) / width))
            finished[b] += 1
            failed[b] += status == "failed"
            if b + 1 < buckets:
                ended_before[b + 1] += 1
        # Its time in flight inside the window (one without an end is in flight until now),
        # in bucket widths from the window's start.
        low = (max(began, start) - start) / width
        high = (min(end, ended if ended is not None else last) - start) / width
        if high > low:
            first, final = min(buckets - 1, int(low)), min(buckets - 1, int(high))
            if first == final:
                partial[first] += high - low
            else:
                partial[first] += first + 1 - low
                partial[final] += high - final
                whole[first + 1] += 1
                whole[final] -= 1
        if duration is not None:
            durations.append(duration)
    concurrency = []
    begun_so_far = in_flight_at_start
    gone_so_far = 0
    covering = 0
    for b in range(buckets):
        begun_so_far += started[b]
        gone_so_far += ended_before[b]
        covering += whole[b]
        concurrency.append(
            {
                "t": round(start + b * width, 6),
                "in_flight": round(covering + partial[b], 3),
                "overlapping": begun_so_far - gone_so_far,
                "started": started[b],
                "finished": finished[b],
                "failed": failed[b],
            }
        )
    return {
        "started_at": origin.isoformat(),
        "from": start,
        "to": end,
        "bucket_seconds": width,
        "concurrency": concurrency,
        "durations": histogram(durations),
        "providers": provider_limits(run, origin, start, end),
        "paused": breaker_periods(run, origin, start, end),
    }


def provider_limits(
    run: Run, origin: dt.datetime, start: float, end: float
) -> dict[str, list[dict[str, Any]]]:
    """Each provider's adaptive limit over the window (seconds since the run started): the
    changes inside it, after the one in force when it opens."""
    lines: dict[str, list[dict[str, Any]]] = {}
    zero = origin.timestamp()
    for key, state in (run.providers or {}).items():
        opening: dict[str, Any] | None = None
        inside: list[dict[str, Any]] = []
        for at, limit in (state or {}).get("history") or []:
            t = round(at - zero, 6)
            if t <= start:
                opening = {"t": start, "limit": limit}
            elif t <= end:
                inside.append({"t": t, "limit": limit})
        points = ([opening] if opening else []) + inside
        if points:
            lines[key] = points
    return lines


def breaker_periods(
    run: Run, origin: dt.datetime, start: float, end: float
) -> dict[str, list[dict[str, Any]]]:
    """Each provider's breaker periods that overlap the window (seconds since the run
    started): open (no call starts) or half_open (probes only), from the breaker history the
    run folded (`fold_breaker`). A period still going at the run's end has `to` null."""
    periods: dict[str, list[dict[str, Any]]] = {}
    zero = origin.timestamp()
    for key, state in (run.providers or {}).items():
        history = ((state or {}).get("breaker") or {}).get("history") or []
        spans: list[dict[str, Any]] = []
        for i, (at, what) in enumerate(history):
            if what not in ("open", "half_open"):
                continue
            begins = round(at - zero, 6)
            ends = round(history[i + 1][0] - zero, 6) if i + 1 < len(history) else None
            if begins >= end or (ends is not None and ends <= start):
                continue
            spans.append({"from": max(begins, start), "to": ends, "state": what})
        if spans:
            periods[key] = spans
    return periods


def histogram(durations: list[float]) -> dict[str, Any]:
    durations.sort()
    if not durations:
        return {"edges": [], "counts": [], "p50": None, "p95": None, "max": None, "count": 0}
    top = durations[-1] or 1.0
    step = top / HISTOGRAM_BINS
    edges = [round(i * step, 6) for i in range(HISTOGRAM_BINS)] + [top]
    counts = [0] * HISTOGRAM_BINS
    for value in durations:
        counts[min(HISTOGRAM_BINS - 1, bisect.bisect_right(edges, value) - 1)] += 1

    def quantile(q: float) -> float:
        return durations[min(len(durations) - 1, int(q * len(durations)))]

    return {
        "edges": edges,
        "counts": counts,
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "max": durations[-1],
        "count": len(durations),
    }
