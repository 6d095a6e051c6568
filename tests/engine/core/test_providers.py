"""Provider governance (engine/core/providers.py): settings, caps, rates, AIMD, headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.core.errors import BlockError, TransientError
from engine.core.provider_answers import outcome_of
from engine.core.provider_settings import KeyLimits, ProviderSettings, parse_provider_limits
from engine.core.providers import CURRENT_STEP, ProviderRegistry, StepTag
from engine.core.retry import RetryPolicy, call_with_retry


class Bus:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, type_: str, **data: Any) -> None:
        self.events.append((type_, data))

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == type_]


def registry(window: float = 60.0, **limits: KeyLimits) -> ProviderRegistry:
    return ProviderRegistry(ProviderSettings(limits=limits, window=window, probe_seconds=30))


# --- settings ------------------------------------------------------------------------------


def test_limits_syntax_bare_cap_and_fields() -> None:
    limits = parse_provider_limits(
        " api.clearbit.com=10, API.OpenAI.com.=concurrency:50;rpm:500;tpm:200000 ,"
        "api.openai.com/gpt-4o-mini=tpm:20000;start:0.25;floor:2"
    )
    assert limits == {
        "api.clearbit.com": KeyLimits(concurrency=10),
        "api.openai.com": KeyLimits(concurrency=50, rpm=500, tpm=200000),
        "api.openai.com/gpt-4o-mini": KeyLimits(tpm=20000, start=0.25, floor=2),
    }
    assert parse_provider_limits("") == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("api.clearbit.com", "expected 'host=N'"),
        ("api.clearbit.com=0", "concurrency must be a positive integer, got '0'"),
        ("api.clearbit.com=ten", "'ten' is not one of concurrency:N"),
        ("api.clearbit.com=rpm:-5", "rpm must be a positive integer"),
        ("api.clearbit.com=burst:5", "'burst:5' is not one of"),
        ("api.clearbit.com=start:1.5", "start must be a fraction in (0, 1]"),
        ("api.clearbit.com=rpm:5;rpm:6", "rpm given twice"),
        ("a=1,a=2", "a is listed twice"),
        ("http://x.com=1", "is not a host name"),
        ("=5", "is not a host name"),
    ],
)
def test_bad_limits_name_the_entry(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="KLYNTOS_PROVIDER_LIMITS entry") as caught:
        parse_provider_limits(text)
    assert says in str(caught.value)


def test_outcomes_follow_the_one_error_vocabulary() -> None:
    assert outcome_of(200, None) == "ok"
    assert outcome_of(404, None) == "neutral"  # the item's own data: counts for nothing
    assert outcome_of(422, BlockError("bad")) == "neutral"
    assert outcome_of(429, TransientError("x")) == "throttled"
    assert outcome_of(None, TransientError("x", status=429)) == "throttled"
    assert outcome_of(503, TransientError("x")) == "server_error"
    assert outcome_of(None, TransientError("x", timeout=True)) == "timeout"
    assert outcome_of(None, TimeoutError()) == "timeout"
    assert outcome_of(None, TransientError("connection refused")) == "unreachable"
    assert outcome_of(None, asyncio.CancelledError()) == "neutral"


# --- concurrency ---------------------------------------------------------------------------


async def test_cap_is_shared_by_every_caller_and_first_come_first_served() -> None:
    reg = registry(**{"api.clearbit.com": KeyLimits(concurrency=3, start=1.0)})
    in_flight = peak = 0
    order: list[int] = []

    async def one(i: int) -> None:
        nonlocal in_flight, peak
        async with reg.call("api.clearbit.com") as call:
            order.append(i)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            call.observe(200)

    await asyncio.gather(*(one(i) for i in range(20)))
    assert peak == 3
    assert order == list(range(20))
    assert reg.snapshot()["api.clearbit.com"]["in_flight"] == 0


async def test_a_waiting_call_says_so_and_its_wait_is_not_its_attempt_time() -> None:
    reg = registry(**{"api.clearbit.com": KeyLimits(concurrency=1, start=1.0)})
    bus = Bus()
    CURRENT_STEP.set(StepTag("loop[1]", "fetch", "fetch", bus))
    hold = asyncio.Event()

    async def holder() -> None:
        async with reg.call("api.clearbit.com"):
            await hold.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)

    async def attempt(_: int) -> str:
        async with reg.call("api.clearbit.com") as call:
            call.observe(200)
            return "done"

    waiting = asyncio.create_task(
        call_with_retry(RetryPolicy(max_attempts=1), attempt, attempt_timeout=0.05)
    )
    await asyncio.sleep(0.2)  # four times the attempt's timeout, spent waiting for the slot
    assert not waiting.done()
    hold.set()
    assert await waiting == "done"
    await first
    [waited] = bus.of("step.waiting")
    assert waited["message"] == "waiting for api.clearbit.com: concurrency"
    assert (waited["item"], waited["block"], waited["provider"]) == (
        "loop[1]",
        "fetch",
        "api.clearbit.com",
    )
    [resumed] = bus.of("step.waited")
    assert resumed["seconds"] >= 0.15


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    reg = registry(**{"h.example": KeyLimits(concurrency=1, start=1.0)})
    hold = asyncio.Event()

    async def holder() -> None:
        async with reg.call("h.example"):
            await hold.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    hold.set()
    await first
    assert reg.snapshot()["h.example"]["in_flight"] == 0
    async with reg.call("h.example"):  # nothing left behind blocks the next call
        pass


# --- rates ---------------------------------------------------------------------------------


async def test_requests_per_window_hold_across_the_window() -> None:
    reg = registry(window=0.3, **{"h.example": KeyLimits(rpm=5)})
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def one() -> None:
        async with reg.call("h.example") as call:
            starts.append(loop.time())
            call.observe(200)

    began = loop.time()
    await asyncio.gather(*(one() for _ in range(12)))
    # 5 per 0.3 s window: 12 calls need two full windows after the first five.
    assert loop.time() - began >= 0.6
    for t in starts:
        assert sum(1 for u in starts if t <= u < t + 0.3) <= 5


async def test_tokens_are_reserved_from_an_estimate_and_settled_from_usage() -> None:
    reg = registry(window=0.5, **{"llm.example": KeyLimits(tpm=1000)})
    bus = Bus()
    CURRENT_STEP.set(StepTag("", "agent", "agent", bus))
    # 400 prompt characters at 0.25 tokens each + the 256-token completion estimate.
    call = reg.call("llm.example", model="m", prompt_chars=400)
    assert call.tokens == 356
    async with call:
        call.observe(200)
        call.settle({"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80}, 400)
    assert reg.snapshot()["llm.example"]["tokens_in_window"] == 80
    # Learned: the next estimate uses the longest recent completion (30), not 256.
    assert reg.call("llm.example", model="m", prompt_chars=400).tokens == 130
    # Three calls of ~330 reserved do not fit 1000 - 80 at once: the third waits.
    calls = [reg.call("llm.example", model="m", prompt_chars=1200, max_tokens=30) for _ in range(3)]
    assert calls[0].tokens == 330
    loop = asyncio.get_running_loop()
    began = loop.time()
    await calls[0].__aenter__()
    await calls[1].__aenter__()
    third = asyncio.create_task(calls[2].__aenter__())
    await asyncio.sleep(0.05)
    assert not third.done()
    assert bus.of("step.waiting")[-1]["reason"] == "tokens/min"
    for c in calls[:2]:
        c.observe(200)
        await c.__aexit__(None, None, None)  # unsettled: the reservation counts
    await third
    assert loop.time() - began >= 0.45  # waited for the first answers' window to pass
    await calls[2].__aexit__(None, None, None)


async def test_a_call_larger_than_the_whole_budget_fails_clearly() -> None:
    reg = registry(**{"llm.example": KeyLimits(tpm=100)})
    with pytest.raises(BlockError, match="more than llm.example's budget of 100 tokens"):
        async with reg.call("llm.example", model="m", prompt_chars=4000):
            pass


async def test_ratelimit_headers_tighten_the_settings_and_retry_after_pauses_the_key() -> None:
    reg = registry(window=60, **{"llm.example": KeyLimits(rpm=1000)})
    async with reg.call("llm.example") as call:
        call.observe(200, {"x-ratelimit-limit-requests": "100", "x-ratelimit-limit-tokens": "5000"})
    assert reg.snapshot()["llm.example"]["rpm"] == 100
    assert reg.snapshot()["llm.example"]["tpm"] == 5000
    # The provider counts fewer requests left than this window does: the difference counts.
    async with reg.call("llm.example") as call:
        call.observe(
            200, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "0.2s"}
        )
    assert reg.snapshot()["llm.example"]["requests_in_window"] >= 100
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with reg.call("llm.example") as call:
        assert loop.time() - began >= 0.15
        call.observe(429, {"Retry-After": "0.2"})
    began = loop.time()
    async with reg.call("llm.example"):
        assert loop.time() - began >= 0.15  # everyone on the key honours Retry-After


async def test_rate_headers_are_read_whatever_their_case_from_aiohttp_and_httpx() -> None:
    import httpx
    from multidict import CIMultiDict, CIMultiDictProxy

    for host, headers in [
        ("a.example", CIMultiDictProxy(CIMultiDict({"X-RateLimit-Limit-Requests": "120"}))),
        ("b.example", httpx.Headers({"X-Ratelimit-Limit-Requests": "120"})),
        ("c.example", {"X-RATELIMIT-LIMIT-REQUESTS": "120"}),
    ]:
        reg = registry(window=60)
        async with reg.call(host) as call:
            call.observe(200, headers)
        assert reg.snapshot()[host]["rpm"] == 120, host
        async with reg.call(host) as call:
            call.observe(200, {"Content-Type": "application/json"})  # nothing to learn
        assert reg.snapshot()[host]["rpm"] == 120, host
    # A header repeated (a proxy adding its own): the last one counts, as in a plain dict.
    repeated = CIMultiDict(
        [("X-RateLimit-Limit-Requests", "500"), ("x-ratelimit-limit-requests", "90")]
    )
    reg = registry(window=60)
    async with reg.call("d.example") as call:
        call.observe(200, CIMultiDictProxy(repeated))
    assert reg.snapshot()["d.example"]["rpm"] == 90


# --- AIMD ----------------------------------------------------------------------------------


async def finish(reg: ProviderRegistry, key: str, status: int | None, exc: Any = None) -> None:
    call = reg.call(key)
    await call.__aenter__()
    if status is not None:
        call.observe(status)
    await call.__aexit__(type(exc) if exc else None, exc, None)


async def test_aimd_starts_at_a_fraction_grows_per_window_and_halves_on_429() -> None:
    reg = registry(**{"h.example": KeyLimits(concurrency=20, start=0.5, floor=2)})
    state = reg.state("h.example")
    assert state.limit == 10
    # Successes while the limit is in use: one more slot per `limit` of them.
    calls = [reg.call("h.example") for _ in range(10)]
    for c in calls:
        await c.__aenter__()
    for c in calls:
        c.observe(200)
        await c.__aexit__(None, None, None)
    assert state.limit == 11
    # Successes while the limit is not in use teach nothing.
    for _ in range(30):
        await finish(reg, "h.example", 200)
    assert state.limit == 11
    # A 429 halves; the other answers of that same generation do not cut again.
    calls = [reg.call("h.example") for _ in range(8)]
    for c in calls:
        await c.__aenter__()
    for c in calls:
        c.observe(429)
        await c.__aexit__(None, None, None)
    assert state.limit == 5
    # A 404 (the item's own data) counts for nothing; a 503 shrinks by one.
    await finish(reg, "h.example", 404)
    assert state.limit == 5
    await finish(reg, "h.example", 503, TransientError("x", status=503))
    assert state.limit == 4
    for _ in range(5):
        await finish(reg, "h.example", None, TransientError("t", timeout=True))
    assert state.limit == 2  # halved to the floor, never under it


async def test_aimd_stays_under_the_limit_that_failed() -> None:
    reg = registry(**{"h.example": KeyLimits(concurrency=20, start=0.5)})
    state = reg.state("h.example")
    bus = Bus()
    CURRENT_STEP.set(StepTag("", "b", "b", bus))
    # Seven in flight and the seventh is refused: the provider takes six.
    calls = [reg.call("h.example") for _ in range(7)]
    for c in calls:
        await c.__aenter__()
    calls[-1].observe(429)
    await calls[-1].__aexit__(None, None, None)
    for c in calls[:-1]:
        c.observe(200)
        await c.__aexit__(None, None, None)
    assert state.limit == 5
    for _ in range(20):  # saturated windows: grows to 6, then stays there
        batch = [reg.call("h.example") for _ in range(state.limit)]
        for c in batch:
            await c.__aenter__()
        for c in batch:
            c.observe(200)
            await c.__aexit__(None, None, None)
    assert state.limit == 6
    limits = [e["limit"] for e in bus.of("provider.limit")]
    assert limits == [10, 5, 6]
    assert bus.of("provider.limit")[1]["reason"] == "429"


async def test_an_uncapped_host_learns_a_limit_from_its_first_429() -> None:
    reg = registry()
    calls = [reg.call("h.example") for _ in range(12)]
    for c in calls:
        await c.__aenter__()
    calls[-1].observe(429)
    await calls[-1].__aexit__(None, None, None)
    assert reg.state("h.example").limit == 6
    for c in calls[:-1]:
        await c.__aexit__(None, None, None)


async def test_hosts_without_settings_leave_no_state_behind() -> None:
    """A workflow calling each lead's own website keeps no state per site."""
    reg = registry(**{"kept.example": KeyLimits(concurrency=5)})
    for i in range(100):
        await finish(reg, f"site{i}.example", 200)
    await finish(reg, "kept.example", 200)
    assert set(reg.snapshot()) == {"kept.example"}
