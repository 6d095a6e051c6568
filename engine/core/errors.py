"""The one error vocabulary: what blocks raise, and what counts as transient.

Blocks raise `BlockError` (fails the step with its message as is) or `TransientError` (the
engine's retry policy may try again). Each transport turns its own exceptions into these
where it lives (`fetch.py` for aiohttp, `outbound.py` for httpx and the SDKs on it, the
agent and Slack blocks for their SDKs' answers); the scheduler only knows this module.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


class BlockError(Exception):
    """A block failed for a reason worth showing to the user as is."""


class TransientError(BlockError):
    """A failure that may pass if tried again (429, 5xx, timeout, connection).

    `status` is the provider's answer when there was one and `timeout` says the call ran out
    of time: provider governance (providers.py) halves on 429 and timeouts, shrinks gently
    on other 5xx and connection failures.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        timeout: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.timeout = timeout


class ProviderUnavailable(BlockError):
    """A provider's breaker gave up on it (`give_up_after`, providers.py): the call fails at
    once instead of waiting. Not transient: the step is not tried again (its item fails, and
    a later "Retry failed" reruns it)."""


class SizeLimitError(BlockError):
    """A value grew past a size limit (KLYNTOS_MAX_OUTPUT_BYTES); never retried."""

    def __init__(self, what: str, limit: int, setting: str = "KLYNTOS_MAX_OUTPUT_BYTES") -> None:
        self.limit = limit
        self.setting = setting
        super().__init__(f"{what} is larger than {limit} bytes ({setting})")


def timed_out(seconds: float | None) -> TransientError:
    """What an attempt that ran past its timeout is: transient."""
    message = f"timed out after {seconds:g} s" if seconds else "timed out"
    return TransientError(message, timeout=True)


def is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
