import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from engine.core.errors import BlockError, TransientError, parse_retry_after
from engine.core.retry import ATTEMPT_STATE, RetryPolicy, call_with_retry


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now=now.timestamp()) == pytest.approx(30, abs=1)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_full_jitter_stays_under_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    rng = random.Random(1)
    delays = [policy.delay(attempt, None, rng) for attempt in (1, 2, 3, 4, 5) for _ in range(50)]
    assert all(0 <= d <= 5.0 for d in delays)
    assert max(policy.delay(1, None, rng) for _ in range(200)) <= 1.0
    assert policy.delay(1, 7.0, rng) == 7.0  # Retry-After wins


async def test_retries_transient_errors_then_succeeds() -> None:
    calls: list[int] = []
    retried: list[float] = []

    async def attempt(n: int) -> str:
        calls.append(n)
        if n < 3:
            raise TransientError("503", retry_after=0.01)
        return "ok"

    result = await call_with_retry(
        RetryPolicy(max_attempts=3),
        attempt,
        attempt_timeout=1,
        on_retry=lambda a, d, e: retried.append(d),
    )
    assert result == "ok" and calls == [1, 2, 3] and retried == [0.01, 0.01]


async def test_permanent_errors_are_not_retried() -> None:
    calls: list[int] = []

    async def attempt(n: int) -> None:
        calls.append(n)
        raise BlockError("404")

    with pytest.raises(BlockError, match="404"):
        await call_with_retry(RetryPolicy(max_attempts=5), attempt, attempt_timeout=1)
    assert calls == [1]


async def test_timeouts_count_as_transient_and_give_up() -> None:
    async def attempt(n: int) -> None:
        await asyncio.sleep(1)

    policy = RetryPolicy(max_attempts=2, base_delay=0.001)
    with pytest.raises(BlockError, match="timed out.*gave up after 2 attempts"):
        await call_with_retry(policy, attempt, attempt_timeout=0.02)


async def test_attempts_after_which_the_breaker_is_open_are_not_counted_up_to_a_bound() -> None:
    """A provider's breaker open after an attempt (providers.py sets AttemptState.paused):
    that attempt is not one of the item's, but at most max_attempts of them are free."""
    calls: list[int] = []

    async def attempt(n: int) -> str:
        calls.append(n)
        state = ATTEMPT_STATE.get()
        assert state is not None
        state.paused = n != 3  # every attempt but the third met an open breaker
        raise TransientError("503")

    with pytest.raises(BlockError, match=r"gave up after 6 attempts"):
        await call_with_retry(
            RetryPolicy(max_attempts=3, base_delay=0.001), attempt, attempt_timeout=None
        )
    # 3 counted (the third, then the two over the bound of 3 free ones) + 3 free.
    assert calls == [1, 2, 3, 4, 5, 6]
