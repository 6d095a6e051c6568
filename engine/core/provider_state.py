"""A run's `providers` state (`Run.providers`): the `provider.limit` and `provider.breaker`
events it heard folded per provider key (the store folds them, the run's timeline draws the
history), and what it says: the providers a run waits for, those given up on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Limit changes a run keeps per provider (Run.providers[key]["history"]), the latest ones.
HISTORY = 200


def fold_limit(providers: Mapping[str, Any], data: Mapping[str, Any], at: float) -> dict[str, Any]:
    """`Run.providers` after a `provider.limit` event: the key's limit, cap and reason now,
    and its last HISTORY `[at, limit]` changes (the run's timeline draws them). A new dict:
    the store's thread may be writing the previous one."""
    key = data["provider"]
    before = providers.get(key) or {}
    history = [*before.get("history", []), [at, data.get("limit")]][-HISTORY:]
    entry = {k: data.get(k) for k in ("limit", "cap", "reason")}
    kept = {"breaker": before["breaker"]} if "breaker" in before else {}
    return {**providers, key: {**entry, "history": history, **kept}}


def fold_breaker(
    providers: Mapping[str, Any], data: Mapping[str, Any], at: float
) -> dict[str, Any]:
    """`Run.providers` after a `provider.breaker` event: the key's breaker now (state, mode,
    reason, trips, since) and its last HISTORY `[at, state]` changes. A new dict."""
    key = data["provider"]
    before = dict(providers.get(key) or {})
    previous = before.get("breaker") or {}
    history = [*previous.get("history", []), [at, data.get("state")]][-HISTORY:]
    breaker = {k: data.get(k) for k in ("state", "mode", "reason", "trips", "message")}
    breaker["since"] = at
    return {**providers, key: {**before, "breaker": {**breaker, "history": history}}}


def paused(providers: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The providers a run waits for (their breaker open or probing; not once it gave up on
    one), from `Run.providers`."""
    return [
        {"provider": key, **{k: b.get(k) for k in ("state", "mode", "reason", "message", "since")}}
        for key, entry in sorted((providers or {}).items())
        if isinstance(entry, Mapping)
        and isinstance(b := entry.get("breaker"), Mapping)
        and b.get("state") in ("open", "half_open")
    ]


def gave_up(providers: Mapping[str, Any] | None) -> list[str]:
    """The providers whose breaker gave up on them while the run waited, from `Run.providers`."""
    return [
        key
        for key, entry in sorted((providers or {}).items())
        if isinstance(entry, Mapping)
        and isinstance(b := entry.get("breaker"), Mapping)
        and b.get("state") == "gave_up"
    ]
