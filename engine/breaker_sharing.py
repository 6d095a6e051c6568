"""Provider breakers shared by every worker (issue 9: "all of them pause together").

A worker's registry decides its breaker from the calls it makes (engine/core/providers.py);
with several workers each would otherwise go on calling a provider another found failing,
and a manual breaker's Resume, posted to the web process, would reach no worker at all.
Each change a worker decides (`open`, `closed`) is written to its provider key's row of
`ProviderBreaker` with a new `version` from one sequence; every worker reads the rows whose
version is above the last it saw, every KLYNTOS_BREAKER_SYNC_SECONDS, and applies the
others' changes to its own registry (`ProviderRegistry.apply_shared`): an open breaker
opens its own with the same policy, reason and end of cool-down, a closed one closes it. A
worker that starts late applies the breakers open now. A Resume (REST) writes `closed` to
the row (`resume_everywhere`), which every worker applies.

Each worker still probes on its own after the cool-down: a worker that died while its
breaker was open never leaves the others paused (manual breakers wait for a Resume, as
everywhere). The give-up clock is shared: the row keeps the earliest start of the outage
any worker wrote while it stays open (`outage_since`, wall time), and every worker gives up
`give_up_after` (in the shared policy) from it, a worker that starts during the outage too,
and a worker whose own breaker opened later adopts the earlier start. Concurrency caps are
shared through the slot tables (engine/slots.py).

The same look shares the rest of a key's governance:
- **Adaptive limits** (AIMD), of keys with settings only (a lead's own website that times
  out writes no row): a limit a worker sets is written to the key's `ProviderLimit` row (a
  version from the same sequence) and applied by every other worker
  (`ProviderRegistry.apply_limit`), a cut at once. A cut is written only when it lowers the
  row's limit or the row's cut is older than KLYNTOS_PROVIDER_PROBE_SECONDS, a step up only
  when it stays under the ceiling of a cut younger than that (a worker that had not heard of
  the cut does not undo it); a refused write is corrected here from the row. The key's
  cluster slots are held under the limit (`ProviderCall`), so the limit bounds the calls in
  flight on all workers at once. A look that fails puts back what it was to write.
- **Requests and tokens per minute**: a key's rate is split into grants, one
  `ProviderGrant` row per worker, that never add up to more than the rate (each grant is
  decided under an advisory lock of the key). A worker spends only what it was granted;
  when its calls need more it asks (`ProviderRegistry.rate_plan`: at least a tenth of the
  rate, so a call costs no statement of its own), and a worker that got less than it asked
  marks its row wanted: while its `wanted_at` is recent the others keep no more than their
  fair share (what the workers that want no more hold is left out, the rest split between
  the wanting ones) and give back the rest as their windows empty; a worker that only holds
  a grant is no peer. What a worker's windows still count is never given back (those calls
  count at the provider until the window after they end), and a grant outlives its worker
  by a window (`expires`, renewed by each look while it has not expired: an expired grant
  is spent no more, and is cut to what the others left; so are all of a worker's grants
  when its looks fail past the lease). Inline (one process) none of this
  runs: the registry's windows are the rates.

The look-out keeps its database connection between looks (they come every 20-200 ms while
grants are wanted) and replaces it only when broken; a process is named by
`engine.polling.process_name()` (host, PID, a token drawn at start), as the slots name it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction

from engine.core.provider_settings import provider_key
from engine.core.providers import ProviderRegistry
from engine.polling import Poller, process_name

log = logging.getLogger(__name__)

# While the row stays open its outage keeps the earliest start any worker wrote (least()
# skips a NULL): the give-up clock is the cluster's, not each worker's.
UPSERT = """
INSERT INTO engine_providerbreaker (key, state, reason, trips, until, policy, process,
    outage_since, version, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, nextval('engine_providerbreaker_version'), now())
ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason,
    trips = EXCLUDED.trips, until = EXCLUDED.until, policy = EXCLUDED.policy,
    process = EXCLUDED.process, version = EXCLUDED.version, updated_at = now(),
    outage_since = CASE WHEN EXCLUDED.state <> 'open' THEN NULL
        WHEN engine_providerbreaker.state = 'open'
            THEN least(engine_providerbreaker.outage_since, EXCLUDED.outage_since)
        ELSE EXCLUDED.outage_since END
RETURNING version
"""
CHANGED = """
SELECT key, state, reason, trips, until, policy, process, version, outage_since
FROM engine_providerbreaker WHERE version > %s ORDER BY version
"""
OPEN_NOW = """
SELECT key, state, reason, trips, until, policy, process, version, outage_since
FROM engine_providerbreaker
WHERE state = 'open' AND (until IS NULL OR until > extract(epoch FROM now()))
"""
LATEST = "SELECT coalesce(max(version), 0) FROM engine_providerbreaker"

# A cut, unless the row holds a cut as deep or deeper made less than the probe time ago (a
# late cut from a worker that had not heard of it must not undo it).
LIMIT_CUT = """
INSERT INTO engine_providerlimit (key, "limit", ceiling, cut_at, process, version, updated_at)
VALUES (%(key)s, %(limit)s, %(ceiling)s, extract(epoch FROM now()), %(process)s,
    nextval('engine_providerbreaker_version'), now())
ON CONFLICT (key) DO UPDATE SET "limit" = EXCLUDED."limit",
    ceiling = coalesce(EXCLUDED.ceiling, engine_providerlimit.ceiling),
    cut_at = EXCLUDED.cut_at, process = EXCLUDED.process, version = EXCLUDED.version,
    updated_at = now()
WHERE EXCLUDED."limit" < engine_providerlimit."limit" OR engine_providerlimit.cut_at IS NULL
    OR engine_providerlimit.cut_at < extract(epoch FROM now()) - %(probe)s
RETURNING version
"""
# A step up, unless it passes the ceiling of a cut made less than the probe time ago.
LIMIT_UP = """
INSERT INTO engine_providerlimit (key, "limit", ceiling, cut_at, process, version, updated_at)
VALUES (%(key)s, %(limit)s, NULL, NULL, %(process)s, nextval('engine_providerbreaker_version'),
    now())
ON CONFLICT (key) DO UPDATE SET "limit" = EXCLUDED."limit", process = EXCLUDED.process,
    version = EXCLUDED.version, updated_at = now()
WHERE engine_providerlimit."limit" < EXCLUDED."limit" AND (
    engine_providerlimit.ceiling IS NULL OR EXCLUDED."limit" <= engine_providerlimit.ceiling
    OR engine_providerlimit.cut_at < extract(epoch FROM now()) - %(probe)s)
RETURNING version
"""
LIMITS_CHANGED = """
SELECT key, "limit", ceiling, extract(epoch FROM now()) - cut_at, process, version
FROM engine_providerlimit WHERE version > %s ORDER BY version
"""
# A worker that starts joins the limits the others set lately (LIMIT_FRESH seconds), not
# what a cluster learned days ago: AIMD starts over where nobody has called lately.
LIMITS_NOW = """
SELECT key, "limit", ceiling, extract(epoch FROM now()) - cut_at, process, version
FROM engine_providerlimit WHERE updated_at > now() - make_interval(secs => %s) ORDER BY version
"""
LIMITS_LATEST = "SELECT coalesce(max(version), 0) FROM engine_providerlimit"
LIMIT_FRESH = 600.0
# What a key's row says after a write of this worker's was refused: applied here.
LIMIT_NOW = """
SELECT key, "limit", ceiling, extract(epoch FROM now()) - cut_at, process, version
FROM engine_providerlimit WHERE key = %s
"""

GRANT_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('klyntos-rate:' || %s, 0))"
# A key's live grants: what the other workers hold, how many of them want more (asked
# recently and got less), what those that want no more hold, and whether this worker's own
# grant is still live (not expired: else others may have taken it).
GRANT_OTHERS = """
SELECT coalesce(sum(requests) FILTER (WHERE other), 0),
    coalesce(sum(tokens) FILTER (WHERE other), 0),
    count(*) FILTER (WHERE other AND wanting),
    coalesce(sum(requests) FILTER (WHERE other AND NOT wanting), 0),
    coalesce(sum(tokens) FILTER (WHERE other AND NOT wanting), 0),
    coalesce(bool_or(NOT other), false)
FROM (
    SELECT requests, tokens, process <> %(process)s AS other,
        coalesce(wanted_at > now() - make_interval(secs => %(recent)s), false) AS wanting
    FROM engine_providergrant WHERE key = %(key)s AND expires > now()
) g
"""
GRANT_SET = """
INSERT INTO engine_providergrant (key, process, requests, tokens, wanted_at, expires)
VALUES (%(key)s, %(process)s, %(requests)s, %(tokens)s,
    CASE WHEN %(wanted)s THEN now() END, now() + make_interval(secs => %(lease)s))
ON CONFLICT (key, process) DO UPDATE SET requests = EXCLUDED.requests,
    tokens = EXCLUDED.tokens, wanted_at = EXCLUDED.wanted_at, expires = EXCLUDED.expires
"""
GRANT_DROP = "DELETE FROM engine_providergrant WHERE key = %s AND process = %s"
# Each look: this worker's live grants renewed (an expired one is not: others may have
# taken it meanwhile), and per key renewed, how many others want more and what the others
# that want no more hold.
GRANT_RENEW = """
WITH mine AS (
    UPDATE engine_providergrant SET expires = now() + make_interval(secs => %(lease)s)
    WHERE process = %(process)s AND expires > now() RETURNING key
), others AS (
    SELECT key, requests, tokens,
        coalesce(wanted_at > now() - make_interval(secs => %(recent)s), false) AS wanting
    FROM engine_providergrant
    WHERE process <> %(process)s AND expires > now() AND key IN (SELECT key FROM mine)
)
SELECT mine.key, count(o.key) FILTER (WHERE o.wanting),
    coalesce(sum(o.requests) FILTER (WHERE NOT o.wanting), 0),
    coalesce(sum(o.tokens) FILTER (WHERE NOT o.wanting), 0)
FROM mine LEFT JOIN others o ON o.key = mine.key
GROUP BY mine.key
"""
GRANT_EXPIRED = "DELETE FROM engine_providergrant WHERE expires < now() - interval '1 minute'"


# The least time between two looks, however often a look is woken (`BreakerSharing.pause`).
MIN_GAP = 0.02
# ... and after a look that got less of a rate than it asked for, doubled after each such
# look in a row up to REFUSED_MAX (a holder that wants no more gives back only once its
# window has emptied: asking every REFUSED_GAP meanwhile cost a statement per call).
REFUSED_GAP = 0.2
REFUSED_MAX = 1.0

T = TypeVar("T")


async def _on_loop(function: Callable[[], T]) -> T:
    return function()


def _change(row: tuple[Any, ...]) -> tuple[str, dict[str, Any], str, int]:
    key, state, reason, trips, until, policy, process, version, outage_since = row
    if isinstance(policy, str | bytes):  # Django's psycopg loads jsonb as text
        policy = json.loads(policy)
    change = {
        "state": state,
        "reason": reason,
        "trips": trips,
        "until": until,
        "outage_since": outage_since,
    }
    return key, {**change, "policy": policy or {}}, process, version


class BreakerSharing(Poller):
    """One worker's side: publishes the changes its registry decides, applies the others'."""

    name = "klyntos-breakers"
    what = "breaker sync"
    keep_connection = True  # woken every 20-200 ms while grants are wanted

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: ProviderRegistry,
        poll_seconds: float,
        process: str | None = None,
    ) -> None:
        super().__init__(poll_seconds)
        self.loop = loop
        self.registry = registry
        self.process = process or process_name()
        self.seen: int | None = None  # the last version read (None: not started)
        self.limits_seen: int | None = None  # the same for adaptive limits
        self._outbox: deque[tuple[str, dict[str, Any]]] = deque()
        self._limits: dict[str, dict[str, Any]] = {}  # the latest limit per key, to write
        self._lock = threading.Lock()
        self._holds_grants = False
        self._renewed_at: float | None = None  # monotonic time of the last renewal
        self._refused = False
        self._refusals = 0  # refused looks in a row
        self._looks = 0
        # Grants decided (a transaction of four statements each; tests count them per call).
        self.grants = 0

    def publish(self, key: str, change: dict[str, Any]) -> None:
        """Called on the loop (the registry's `_share`): written by the next look."""
        if change.get("state") in ("open", "closed"):
            with self._lock:
                self._outbox.append((key, change))

    def publish_limit(self, key: str, change: dict[str, Any]) -> None:
        """Called on the loop (the registry's `_share_limit`): the next look writes the
        latest limit of each key (a cut wakes it at once)."""
        with self._lock:
            before = self._limits.get(key)
            if before is not None and before.get("cut"):  # a step up keeps the cut's ceiling
                change = {
                    **change,
                    "cut": True,
                    "ceiling": change.get("ceiling") or before.get("ceiling"),
                }
            self._limits[key] = change
        if change.get("cut"):
            self.wake()

    def pause(self) -> float:
        """A look every `poll` seconds, or at once when woken (`wake`: a grant wanted, a
        cut), but at most one per MIN_GAP; after a refused grant, one per REFUSED_GAP (the
        others give back at their next look: ask again after it), doubled for each refused
        look in a row up to REFUSED_MAX (or `poll`, when longer)."""
        if not self._refused:
            self._refusals = 0
            return MIN_GAP
        self._refused = False
        # Bounded: the gap stops growing at REFUSED_MAX long before 2**n overflows a float
        # (an uncapped count did after ~1,000 refusals in a row, ending the poller).
        self._refusals = min(self._refusals + 1, 16)
        first = min(self.poll, REFUSED_GAP)
        return min(max(REFUSED_MAX, self.poll), first * 2 ** (self._refusals - 1))

    def look(self) -> None:
        with self._lock:
            outgoing = list(self._outbox)
            self._outbox.clear()
            limits = list(self._limits.items())
            self._limits.clear()
        try:
            self._write_and_read(outgoing, limits)
        except BaseException:
            self._requeue(outgoing, limits)
            self._lapse()
            raise
        try:
            self._share_rates()
        except BaseException:
            self._lapse()
            raise

    def lease(self) -> float:
        """How long a grant outlives its last renewal (a window past the next looks)."""
        return self.registry.settings.window + 3 * self.poll + 1.0

    def _lapse(self) -> None:
        """A look that failed: once the last renewal of this worker's grants is older than
        their lease, the others may have taken them, so they are spent no more here."""
        renewed = self._renewed_at
        if renewed is None or time.monotonic() - renewed <= self.lease():
            return
        self._renewed_at = None
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.registry.rate_peers, {}, [])

    def _requeue(
        self, outgoing: list[tuple[str, dict[str, Any]]], limits: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """A look that failed: what it was to write is written by the next one (a change
        decided since goes after it; a limit decided since replaces it)."""
        with self._lock:
            self._outbox.extendleft(reversed(outgoing))
            for key, change in limits:
                if key not in self._limits:
                    self._limits[key] = change
                elif change.get("cut") and not self._limits[key].get("cut"):
                    self._limits[key] = {**self._limits[key], "cut": True}

    def _write_and_read(
        self, outgoing: list[tuple[str, dict[str, Any]]], limits: list[tuple[str, dict[str, Any]]]
    ) -> None:
        with connection.cursor() as cursor:
            if self.seen is None:  # a worker that starts late joins the breakers open now
                cursor.execute(LATEST)
                self.seen = int(cursor.fetchone()[0])
                cursor.execute(OPEN_NOW)
                for row in cursor.fetchall():
                    self._apply(*_change(row)[:3])
            self._share_limits(cursor, limits)
            for key, change in outgoing:
                cursor.execute(
                    UPSERT,
                    [
                        key,
                        change["state"],
                        str(change.get("reason") or "")[:500],
                        int(change.get("trips") or 0),
                        change.get("until"),
                        json.dumps(change.get("policy") or {}),
                        self.process,
                        change.get("outage_since") if change["state"] == "open" else None,
                    ],
                )
            cursor.execute(CHANGED, [self.seen])
            for row in cursor.fetchall():
                key, change, process, version = _change(row)
                self.seen = max(self.seen, version)
                if process != self.process:
                    self._apply(key, change, process)

    def _share_limits(self, cursor: Any, limits: list[tuple[str, dict[str, Any]]]) -> None:
        """Write the limits decided here, apply the others' (at the first look, those set in
        the last LIMIT_FRESH seconds).
        A write the row refused (a deeper cut made there meanwhile, a step up over a recent
        cut's ceiling) is corrected here: the row's limit and ceiling are applied."""
        probe = self.registry.settings.probe_seconds
        for key, change in limits:
            params = {"key": key, "limit": change["limit"], "process": self.process}
            if change.get("cut"):
                cursor.execute(
                    LIMIT_CUT, {**params, "ceiling": change.get("ceiling"), "probe": probe}
                )
            else:
                cursor.execute(LIMIT_UP, {**params, "probe": probe})
            if cursor.fetchone() is None:  # refused: the row's limit holds here too
                cursor.execute(LIMIT_NOW, [key])
                row = cursor.fetchone()
                if row is not None:
                    self._apply_limit(row)
        joined: list[tuple[Any, ...]] = []
        if self.limits_seen is None:
            cursor.execute(LIMITS_LATEST)
            self.limits_seen = int(cursor.fetchone()[0])
            cursor.execute(LIMITS_NOW, [LIMIT_FRESH])
            joined = [row for row in cursor.fetchall() if row[5] <= self.limits_seen]
        cursor.execute(LIMITS_CHANGED, [self.limits_seen])
        for row in [*joined, *cursor.fetchall()]:
            self.limits_seen = max(self.limits_seen, row[5])
            if row[4] != self.process:
                self._apply_limit(row)

    def _apply_limit(self, row: tuple[Any, ...]) -> None:
        key, limit, ceiling, cut_age, _process, _version = row
        if not self.loop.is_closed():
            age = None if cut_age is None else float(cut_age)
            self.loop.call_soon_threadsafe(self.registry.apply_limit, key, limit, ceiling, age)

    def _share_rates(self) -> None:
        """Settle this worker's grants with the database: give back and ask for what
        `rate_plan` says, renew what it keeps, learn who else shares its keys."""
        if self.loop.is_closed():
            return
        plan = asyncio.run_coroutine_threadsafe(_on_loop(self.registry.rate_plan), self.loop)
        lease = self.lease()
        recent = max(1.0, 4 * self.poll)
        base: dict[str, Any] = {"process": self.process, "lease": lease, "recent": recent}
        for entry in plan.result(30):
            key, keep, ask, rates = entry["key"], entry["keep"], entry["ask"], entry["rates"]
            got, sharers = [0.0, 0.0], (1, 0.0, 0.0)
            try:
                sharers = self._grant(key, keep, ask, rates, got, base)
            except Exception:  # one key's failure leaves the others' grants to settle
                log.exception("the grant of %s failed", key)
                got = [0.0, 0.0]
            # Its calls are told, even of nothing (they ask again).
            peers, idle = sharers[0], (sharers[1], sharers[2])
            self.loop.call_soon_threadsafe(self.registry.rate_granted, key, got, peers, idle)
            self._refused = self._refused or any(got[k] + 1e-9 < ask[k] for k in (0, 1))
        if self._holds_grants:
            with connection.cursor() as cursor:
                cursor.execute(GRANT_RENEW, base)
                peers_of = {
                    key: (1 + int(wanting), float(requests), float(tokens))
                    for key, wanting, requests, tokens in cursor.fetchall()
                }
                self._looks += 1
                self._renewed_at = time.monotonic()
                if self._looks % 500 == 0:  # now and then: grants of workers long gone
                    cursor.execute(GRANT_EXPIRED)
            # A key not renewed had expired: nothing more of it is spent here.
            renewed = list(peers_of)
            self.loop.call_soon_threadsafe(self.registry.rate_peers, peers_of, renewed)

    def _grant(
        self,
        key: str,
        keep: list[float],
        ask: list[float],
        rates: tuple[float | None, float | None],
        got: list[float],
        base: dict[str, Any],
    ) -> tuple[int, float, float]:
        """One key's grant decided under its lock: this worker keeps `keep` (while its grant
        is live; after it expired, only what the others left of the rate), and gets what it
        asks for of the rate that the others leave; `got` is set to the change of its grant.
        Returns how many workers share the key now (the others that want more, and this
        one) and what the others that want no more hold (requests, tokens)."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(GRANT_LOCK, [key])
            cursor.execute(GRANT_OTHERS, {**base, "key": key})
            others_requests, others_tokens, wanting, idle_requests, idle_tokens, live = (
                cursor.fetchone()
            )
            kept = list(keep)
            added = [0.0, 0.0]
            for kind, others_hold in enumerate((others_requests, others_tokens)):
                rate = rates[kind]
                if rate is None:
                    continue
                left = max(0.0, float(rate) - float(others_hold))
                if not live:  # expired: others may have taken it meanwhile
                    kept[kind] = min(keep[kind], left)
                if ask[kind] > 0:
                    added[kind] = max(0.0, min(ask[kind], left - kept[kind]))
            wanted = any(added[k] + 1e-9 < ask[k] for k in (0, 1))
            for kind in (0, 1):
                got[kind] = kept[kind] - keep[kind] + added[kind]
            amounts = [kept[0] + added[0], kept[1] + added[1]]
            if any(amounts) or wanted:
                values = {"requests": amounts[0], "tokens": amounts[1], "wanted": wanted}
                cursor.execute(GRANT_SET, {**base, "key": key, **values})
                self._holds_grants = True
            else:
                cursor.execute(GRANT_DROP, [key, self.process])
            self.grants += 1
        return 1 + int(wanting), float(idle_requests), float(idle_tokens)

    def _apply(self, key: str, change: dict[str, Any], process: str) -> None:
        if process == self.process or self.loop.is_closed():
            return
        log.info("breaker of %s %s on %s: %s", key, change["state"], process, change["reason"])
        self.loop.call_soon_threadsafe(self.registry.apply_shared, key, change)


_by_loop: dict[asyncio.AbstractEventLoop, BreakerSharing] = {}


async def share_breakers() -> BreakerSharing:
    """Start sharing this loop's provider breakers with the other workers (a worker's
    executor loop, once)."""
    from engine.config import provider_registry

    loop = asyncio.get_running_loop()
    sharing = _by_loop.get(loop)
    if sharing is None:
        registry = provider_registry()
        sharing = _by_loop[loop] = BreakerSharing(
            loop, registry, settings.KLYNTOS_BREAKER_SYNC_SECONDS
        )
        registry.sharing = sharing
        sharing.start()
    return sharing


def stop_sharing(loop: asyncio.AbstractEventLoop | None) -> None:
    sharing = _by_loop.pop(loop, None) if loop is not None else None
    if sharing is not None:
        sharing.registry.sharing = None
        sharing.stop()


def resume_everywhere(key: str) -> bool:
    """A Resume for every worker: `key`'s row says `closed`. False when no worker's breaker
    of `key` is open or probing (nothing to resume)."""
    key = provider_key(key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT state FROM engine_providerbreaker WHERE key = %s", [key])
        row = cursor.fetchone()
        if row is None or row[0] == "closed":
            return False
        cursor.execute(
            UPSERT, [key, "closed", "resumed", 0, None, "{}", f"web:{process_name()}", None]
        )
    return True
