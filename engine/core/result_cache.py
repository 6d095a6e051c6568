"""Result cache: a block's output reused instead of calling its provider again.

Opt-in per block (`cache: {ttl: seconds}`, agent and HTTP blocks). The key is the block type
and its fully resolved config — model, prompts, URL, headers, body — with every secret value
replaced by its reference name (`<env.NAME>`) before hashing, so no secret is ever part of a
key and changing a secret's value does not invalidate anything. Settings that do not change
what the block answers (`cache`, `retry`, `timeout`, `run_if`) are left out.

Where entries live is the host's (`ResultCache`): the engine app keeps them per owner in the
database (engine/result_cache.py); `MemoryResultCache` serves headless runs and tests.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

CACHEABLE = frozenset({"agent", "http"})
# Fields that say how to call, not what: left out of the key.
NOT_IN_KEY = frozenset({"cache", "retry", "timeout", "run_if", "pin"})
# The longest a cached output may be kept (KLYNTOS_RESULT_CACHE_MAX_TTL may lower it).
MAX_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Cached:
    output: Any
    usage: list[dict[str, Any]]  # what the call that made it used (dollars saved by a hit)


class ResultCache(Protocol):
    async def get(self, key: str) -> Cached | None: ...

    async def put(
        self, key: str, block_type: str, output: Any, usage: list[dict[str, Any]], ttl: float
    ) -> None:
        """Keep `output` under `key`; it may be written after this returns (a lookup by
        the same cache answers it meanwhile), and at the latest by `aclose()`."""
        ...

    async def flush(self) -> None:
        """Wait until every output kept so far is written (or its write has failed)."""
        ...

    async def aclose(self) -> None:
        """Write what is not written yet and let go of what the cache holds (the run's end)."""
        ...


def cache_ttl(config: Mapping[str, Any], block_type: str) -> float | None:
    """The TTL a block asks for, or None when it does not cache."""
    if block_type not in CACHEABLE:
        return None
    cache = config.get("cache")
    if not isinstance(cache, Mapping):
        return None
    ttl = cache.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        return None
    return float(min(ttl, MAX_TTL_SECONDS))


def cache_key(block_type: str, resolved: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """sha256 of the block type and its resolved config, secrets replaced by their names."""
    config = {k: v for k, v in resolved.items() if k not in NOT_IN_KEY}
    text = json.dumps(
        {"type": block_type, "config": config}, sort_keys=True, ensure_ascii=False, default=str
    )
    # Longest first, so a secret that contains another is replaced whole.
    for name, value in sorted(env.items(), key=lambda pair: -len(pair[1] or "")):
        if value:
            text = text.replace(json.dumps(value, ensure_ascii=False)[1:-1], f"<env.{name}>")
    return hashlib.sha256(text.encode()).hexdigest()


class MemoryResultCache:
    """A process-local cache (headless runs, tests): entries expire after their TTL."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, Cached]] = {}

    async def get(self, key: str) -> Cached | None:
        found = self.entries.get(key)
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1]

    async def put(
        self, key: str, block_type: str, output: Any, usage: list[dict[str, Any]], ttl: float
    ) -> None:
        self.entries[key] = (time.monotonic() + ttl, Cached(output, list(usage)))

    async def aclose(self) -> None:
        return None

    async def flush(self) -> None:
        return None
