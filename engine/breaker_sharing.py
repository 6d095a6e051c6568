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
everywhere). Rates and AIMD limits stay per worker; concurrency caps are shared through the
slot tables (engine/slots.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections import deque
from typing import Any

from django.conf import settings
from django.db import connection

from engine.core.providers import ProviderRegistry, provider_key
from engine.polling import Poller

log = logging.getLogger(__name__)

UPSERT = """
INSERT INTO engine_providerbreaker (key, state, reason, trips, until, policy, process, version,
    updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, nextval('engine_providerbreaker_version'), now())
ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason,
    trips = EXCLUDED.trips, until = EXCLUDED.until, policy = EXCLUDED.policy,
    process = EXCLUDED.process, version = EXCLUDED.version, updated_at = now()
RETURNING version
"""
CHANGED = """
SELECT key, state, reason, trips, until, policy, process, version
FROM engine_providerbreaker WHERE version > %s ORDER BY version
"""
OPEN_NOW = """
SELECT key, state, reason, trips, until, policy, process, version
FROM engine_providerbreaker
WHERE state = 'open' AND (until IS NULL OR until > extract(epoch FROM now()))
"""
LATEST = "SELECT coalesce(max(version), 0) FROM engine_providerbreaker"


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _change(row: tuple[Any, ...]) -> tuple[str, dict[str, Any], str, int]:
    key, state, reason, trips, until, policy, process, version = row
    if isinstance(policy, str | bytes):  # Django's psycopg loads jsonb as text
        policy = json.loads(policy)
    change = {"state": state, "reason": reason, "trips": trips, "until": until}
    return key, {**change, "policy": policy or {}}, process, version


class BreakerSharing(Poller):
    """One worker's side: publishes the changes its registry decides, applies the others'."""

    name = "klyntos-breakers"
    what = "breaker sync"

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
        self._outbox: deque[tuple[str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()

    def publish(self, key: str, change: dict[str, Any]) -> None:
        """Called on the loop (the registry's `_share`): written by the next look."""
        if change.get("state") in ("open", "closed"):
            with self._lock:
                self._outbox.append((key, change))

    def look(self) -> None:
        with self._lock:
            outgoing = list(self._outbox)
            self._outbox.clear()
        with connection.cursor() as cursor:
            if self.seen is None:  # a worker that starts late joins the breakers open now
                cursor.execute(LATEST)
                self.seen = int(cursor.fetchone()[0])
                cursor.execute(OPEN_NOW)
                for row in cursor.fetchall():
                    self._apply(*_change(row)[:3])
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
                    ],
                )
            cursor.execute(CHANGED, [self.seen])
            for row in cursor.fetchall():
                key, change, process, version = _change(row)
                self.seen = max(self.seen, version)
                if process != self.process:
                    self._apply(key, change, process)

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
        cursor.execute(UPSERT, [key, "closed", "resumed", 0, None, "{}", f"web:{process_name()}"])
    return True
