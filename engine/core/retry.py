"""The one retry policy: exponential backoff with full jitter, `Retry-After` honoured.

Only transient failures are retried (429, 5xx, timeouts, connection errors); blocks signal them
by raising `TransientError`. The engine is the only layer that retries (SDK retries are off).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from engine.core.deadlines import Deadline, deadline_after
from engine.core.errors import BlockError, TransientError, timed_out

T = TypeVar("T")

# The running attempt's timeout: time spent waiting for a provider's budget is not the
# attempt's (providers.py holds it while waiting), and a cancel it caused is a timeout.
ATTEMPT_TIMEOUT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "attempt_timeout", default=None
)


class AttemptState:
    """What provider governance tells the retry loop about the running attempt."""

    __slots__ = ("paused",)

    def __init__(self) -> None:
        # Its provider's breaker is open after it failed: the item waits for the provider
        # instead of spending its attempts.
        self.paused = False


ATTEMPT_STATE: contextvars.ContextVar[AttemptState | None] = contextvars.ContextVar(
    "attempt_state", default=None
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Defaults mirror KLYNTOS_RETRY_ATTEMPTS, _BASE_DELAY, _MAX_DELAY and _AFTER_MAX."""

    max_attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 10.0
    # The longest a server's Retry-After is obeyed: a hostile upstream cannot park a step.
    max_retry_after: float = 60.0

    def for_block(self, option: Any) -> RetryPolicy:
        """This policy with a block's `retry` option applied (its config schema bounds the
        values; the operator's Retry-After cap always holds)."""
        if not isinstance(option, Mapping) or not option:
            return self
        return replace(
            self,
            max_attempts=int(option.get("attempts", self.max_attempts)),
            base_delay=float(option.get("base_delay", self.base_delay)),
            max_delay=float(option.get("max_delay", self.max_delay)),
        )

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Wait before attempt `attempt + 1`; full jitter unless the server said when."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)


OnRetry = Callable[[int, float, TransientError], None]


async def call_with_retry(
    policy: RetryPolicy,
    attempt_fn: Callable[[int], Awaitable[T]],
    *,
    attempt_timeout: float | None,
    on_retry: OnRetry | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run `attempt_fn(attempt)` until it succeeds, fails for good, or attempts run out.

    Each attempt has its own timeout; a timeout counts as transient. An attempt that failed
    while its provider's breaker opened (`AttemptState.paused`) is not counted, up to
    `max_attempts` of them: the item waits for the provider rather than running out of
    attempts.
    """
    rng = rng or random.Random()  # noqa: S311 -- retry jitter, not a secret
    attempt = 1
    paused = 0
    while True:
        current = AttemptState()
        try:
            # asyncio.timeout's behaviour, minus a loop timer per attempt (deadlines.py).
            async with deadline_after(attempt_timeout) as deadline:
                token = ATTEMPT_TIMEOUT.set(deadline)
                state_token = ATTEMPT_STATE.set(current)
                try:
                    return await attempt_fn(attempt)
                finally:
                    ATTEMPT_STATE.reset(state_token)
                    ATTEMPT_TIMEOUT.reset(token)
        except TimeoutError:
            error: TransientError = timed_out(attempt_timeout)
        except TransientError as exc:
            error = exc
        if current.paused and paused < policy.max_attempts:
            # The provider's breaker is open after it: not counted (at most max_attempts of
            # them, so an item whose own data keeps failing its provider still ends).
            paused += 1
        if attempt - paused >= policy.max_attempts:
            if attempt > 1:
                raise BlockError(f"{error} (gave up after {attempt} attempts)") from error
            raise error
        wait = policy.delay(attempt, error.retry_after, rng)
        if on_retry is not None:
            on_retry(attempt, wait, error)
        await asyncio.sleep(wait)
        attempt += 1
