"""What a provider's answer says: the outcome of a call (ok, throttled, timeout,
server_error, unreachable, neutral) from its status and what the block raised, and the
numbers and durations of its `x-ratelimit-*` headers.
"""

from __future__ import annotations

import asyncio
import math
import re

import httpx
from multidict import CIMultiDict, CIMultiDictProxy

from engine.core.errors import TransientError
from engine.core.retry import ATTEMPT_TIMEOUT

# The outcomes a breaker counts as failed (the others: succeeded, or not at all).
FAILED_OUTCOMES = frozenset({"throttled", "timeout", "server_error", "unreachable"})
# How a failed outcome is named in a breaker's reason.
OUTCOME_WORDS = {
    "throttled": "429",
    "timeout": "timeout",
    "server_error": "5xx",
    "unreachable": "unreachable",
}


def outcome_of(status: int | None, exc: BaseException | None) -> str:
    """ok | throttled | timeout | server_error | unreachable | neutral."""
    if exc is None and (status is None or status < 400):
        return "ok"  # nearly every call: none of the checks below applies
    transient = exc if isinstance(exc, TransientError) else None
    status = status or (transient.status if transient else None)
    if isinstance(exc, TimeoutError) or (transient is not None and transient.timeout):
        return "timeout"
    if isinstance(exc, asyncio.CancelledError):
        deadline = ATTEMPT_TIMEOUT.get()
        return "timeout" if deadline is not None and deadline.expired() else "neutral"
    if status == 429:
        return "throttled"
    if status is not None and status >= 500:
        return "server_error"
    if transient is not None:
        return "unreachable" if status is None else "neutral"
    return "neutral"  # another 4xx, or an exception that is none of the above


def header_number(value: str | None) -> float | None:
    """A header's finite, non-negative number; None when it is absent or not one."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def header_duration(value: str | None) -> float | None:
    """`1s`, `6m0s`, `20ms`, `0.5` (seconds) → seconds."""
    if value is None:
        return None
    value = value.strip().lower()
    plain = header_number(value)
    if plain is not None:
        return plain
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


# The headers a registry reads rates from (lower case).
RATE_HEADERS = frozenset(
    f"x-ratelimit-{what}{kind}"
    for what in ("limit", "remaining", "reset")
    for kind in ("-requests", "-tokens", "")
)
# Header mappings that ignore case already (aiohttp's and httpx's).
CASELESS_HEADERS = (CIMultiDict, CIMultiDictProxy, httpx.Headers)
