"""A breaker that gives up (engine/core/providers.py, `give_up_after`): a provider down for
good must not leave a run paused forever. An auto breaker not closed for `give_up_after`
seconds since it first opened fails the calls it holds back, and new ones at once until it
closes, with a final error naming the provider, how long it was unavailable and why; the
runs that heard it are paused no more. A close (probes, Resume) starts the clock again;
manual mode and 0 never give up. Time is scaled down (tenths of a second, real loop time)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from engine.core.errors import BlockError, ProviderUnavailable, TransientError
from engine.core.loop_policies import breaker_policy
from engine.core.provider_settings import (
    MAX_GIVE_UP_AFTER,
    BreakerPolicy,
    ProviderSettings,
    parse_breaker,
)
from engine.core.provider_state import fold_breaker, paused
from engine.core.providers import CURRENT_STEP, ProviderPaused, ProviderRegistry, StepTag
from engine.core.retry import RetryPolicy, call_with_retry
from tests.engine.core.test_providers import Bus

KEY = "api.clearbit.com"
# What a loaded machine may add to a timer's moment.
SLACK = 1.0


def registry(**policy: Any) -> ProviderRegistry:
    """A breaker that opens on two failed calls of two; the cool-down outlasts each test
    unless it says otherwise (no probe unless it asks for one)."""
    settings = {"window": 2, "min_calls": 2, "failure_rate": 0.5, "cool_down": 30.0, **policy}
    return ProviderRegistry(ProviderSettings(breaker=BreakerPolicy(**settings)))


async def fail_calls(reg: ProviderRegistry, n: int = 2) -> None:
    state = reg.state(KEY)
    for _ in range(n):
        reg.release(await reg.acquire((state,), 0), "server_error")


async def one_call(reg: ProviderRegistry) -> tuple[BaseException | None, float]:
    """A call to the key: what it raised (None: let through) and when it ended."""
    try:
        async with reg.call(KEY) as call:
            call.observe(200)
    except BlockError as exc:
        return exc, time.monotonic()
    return None, time.monotonic()


def unavailable(seconds: str = r"\d+(\.\d)?", reason: str = "2 of 2 calls failed") -> str:
    reason = re.escape(reason)
    return (
        rf"^{re.escape(KEY)} unavailable for {seconds} s \(breaker open: {reason}\); not retried$"
    )


async def test_waiting_calls_fail_once_it_gives_up_and_new_calls_fail_at_once() -> None:
    reg = registry(give_up_after=0.4)
    bus = Bus()
    CURRENT_STEP.set(StepTag("loop[0]", "fetch", "fetch", bus))
    await fail_calls(reg)
    opened = time.monotonic()
    assert reg.state(KEY).breaker.state == "open"
    waiting = [asyncio.create_task(one_call(reg)) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert not any(task.done() for task in waiting)  # held back, not failed
    results = await asyncio.wait_for(asyncio.gather(*waiting), 0.4 + SLACK)
    for error, ended in results:
        assert isinstance(error, ProviderUnavailable)
        assert not isinstance(error, TransientError)  # final: the retry policy stops there
        assert re.match(unavailable(r"0\.[4-9]|1\.\d"), str(error)), str(error)
        assert ended - opened >= 0.4 - 0.02

    # While it stays open, a new call fails at once, without waiting (nor saying it waits).
    waits_before = len(bus.of("step.waiting"))
    started = time.monotonic()
    error, ended = await one_call(reg)
    assert isinstance(error, ProviderUnavailable) and re.match(unavailable(), str(error))
    assert ended - started < 0.2  # not a wait: half the give-up (a loaded machine's pause aside)
    assert len(bus.of("step.waiting")) == waits_before
    assert reg.state(KEY).breaker.state == "open"  # still open: its probes come as before

    # Each waiting step counted its wait as waiting; the run heard it gave up, and its
    # providers say it waits for nothing any more.
    assert len(bus.of("step.waited")) == 3
    heard = bus.of("provider.breaker")
    assert [e["state"] for e in heard] == ["open", "gave_up"]
    assert re.match(unavailable(), heard[-1]["message"]), heard[-1]["message"]
    providers: dict[str, Any] = {}
    for at, event in enumerate(heard):
        providers = fold_breaker(providers, event, float(at))
        if event["state"] == "open":
            assert [p["provider"] for p in paused(providers)] == [KEY]
    assert paused(providers) == []


async def test_the_give_up_is_final_for_the_steps_retry_policy() -> None:
    """An item's step whose calls fail (500) until the breaker opens waits for it, then
    fails with the give-up's reason: not retried, whatever attempts the policy has left."""
    reg = registry(give_up_after=0.3)
    CURRENT_STEP.set(StepTag("loop[0]", "fetch", "fetch", Bus()))
    attempts = []

    async def attempt(number: int) -> None:
        attempts.append(number)
        async with reg.call(KEY) as call:
            call.observe(500)
            raise TransientError("Clearbit returned 500", status=500)

    policy = RetryPolicy(max_attempts=10, base_delay=0.01, max_delay=0.02)
    with pytest.raises(ProviderUnavailable, match=unavailable()):
        await asyncio.wait_for(call_with_retry(policy, attempt, attempt_timeout=5), 0.3 + SLACK)
    assert attempts == [1, 2, 3]  # two calls opened it; the third waited and gave up


async def test_a_breaker_that_closes_starts_its_clock_again() -> None:
    """Resume (or probes that succeed) closes it: the next outage has its own
    `give_up_after`, however long the one before lasted."""
    reg = registry(give_up_after=0.4)
    await fail_calls(reg)
    await asyncio.sleep(0.3)
    assert reg.resume(KEY) is True
    await fail_calls(reg)
    reopened = time.monotonic()
    await asyncio.sleep(0.2)  # past the first outage's give-up time (0.5 s after it began)
    waiter = asyncio.create_task(one_call(reg))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # held back: this outage is 0.25 s old
    error, ended = await asyncio.wait_for(waiter, SLACK)
    assert isinstance(error, ProviderUnavailable)
    assert ended - reopened >= 0.4 - 0.02

    # Probes that succeed close it the same way.
    reg = registry(give_up_after=0.4, cool_down=0.05, probes=1)
    await fail_calls(reg)
    breaker = reg.state(KEY).breaker
    first = breaker.give_up_at()
    assert first is not None
    await asyncio.sleep(0.1)
    error, _ = await one_call(reg)  # the probe, answered 200
    assert error is None and breaker.state == "closed" and breaker.give_up_at() is None
    await fail_calls(reg)
    again = breaker.give_up_at()
    assert again is not None and again >= first + 0.1


async def test_after_the_give_up_its_probes_still_find_a_provider_back() -> None:
    """Given up, it still probes after each cool-down: a call then is a probe, the calls
    while it is in flight wait for its answer (not failed), and a probe that succeeds closes
    it: the provider is used again (a "Retry failed" once it is back)."""
    reg = registry(give_up_after=0.1, cool_down=0.3, probes=1)
    await fail_calls(reg)
    await asyncio.sleep(0.15)
    error, _ = await one_call(reg)
    assert isinstance(error, ProviderUnavailable)  # open, past its give-up: fails at once
    await asyncio.sleep(0.2)  # the cool-down has ended
    answer = asyncio.Event()

    async def probe() -> None:
        async with reg.call(KEY) as call:
            await answer.wait()
            call.observe(200)

    probing = asyncio.create_task(probe())
    await asyncio.sleep(0.02)
    assert reg.state(KEY).breaker.state == "half_open"
    after = asyncio.create_task(one_call(reg))
    await asyncio.sleep(0.05)
    assert not after.done()  # waits for the probe's answer
    answer.set()
    await probing
    error, _ = await asyncio.wait_for(after, SLACK)
    assert error is None and reg.state(KEY).breaker.state == "closed"


async def test_manual_mode_and_zero_never_give_up() -> None:
    for policy in ({"mode": "manual", "give_up_after": 0.1}, {"give_up_after": 0}):
        reg = registry(**policy)
        await fail_calls(reg)
        assert reg.state(KEY).breaker.give_up_at() is None
        waiter = asyncio.create_task(one_call(reg))
        await asyncio.sleep(0.4)
        assert not waiter.done(), policy  # still waiting, long past 0.1 s
        assert reg.resume(KEY) is True
        error, _ = await asyncio.wait_for(waiter, SLACK)
        assert error is None, policy


async def test_a_failover_moves_on_from_a_provider_given_up_on() -> None:
    """A call with somewhere else to go (an Agent's next model) is told the key is paused,
    not failed: the next model takes the item."""
    reg = registry(give_up_after=0.05)
    await fail_calls(reg)
    await asyncio.sleep(0.1)
    state = reg.state(KEY)
    with pytest.raises(ProviderPaused, match="gave-up"):
        await reg.acquire((state,), 0, or_next=True)
    assert reg.available(KEY) is False


async def test_a_worker_joining_an_open_breaker_gives_up_on_the_outages_clock() -> None:
    """Workers: the opener's policy and the outage's start travel with the shared change; a
    worker that applies it gives up `give_up_after` after the outage began at the opener,
    not after it joined (engine/breaker_sharing.py)."""
    published: list[dict[str, Any]] = []

    class Sharing:
        def publish(self, key: str, change: dict[str, Any]) -> None:
            published.append(change)

        def publish_limit(self, key: str, change: dict[str, Any]) -> None: ...

        def wake(self) -> None: ...

    opener = registry(give_up_after=1.0)
    opener.sharing = Sharing()
    opened = time.monotonic()
    await fail_calls(opener)
    [change] = published
    assert change["policy"]["give_up_after"] == 1.0
    assert abs(change["outage_since"] - time.time()) < 0.5

    joiner = ProviderRegistry(ProviderSettings())  # its own setting: the default 900 s
    await asyncio.sleep(0.7)
    joiner.apply_shared(KEY, change)
    joined = time.monotonic()
    error, ended = await asyncio.wait_for(one_call(joiner), 1.0 + SLACK)
    assert isinstance(error, ProviderUnavailable)
    assert ended - opened >= 1.0 - 0.02
    assert ended - joined < 0.9  # not a whole give_up_after from joining


def test_give_up_after_is_parsed_or_refused_naming_what_is_wrong() -> None:
    assert BreakerPolicy().give_up_after == parse_breaker("").give_up_after == 900
    assert parse_breaker("give_up_after:600").give_up_after == 600
    assert parse_breaker("cool_down:1; give_up_after:0").give_up_after == 0
    assert parse_breaker(f"give_up_after:{MAX_GIVE_UP_AFTER}").give_up_after == 604_800
    for value in ("-1", "604801", "soon", "nan"):
        with pytest.raises(
            ValueError,
            match=re.escape(
                "KLYNTOS_BREAKER: give_up_after must be seconds from 0 (never) to 604800, "
                f"got '{value}'"
            ),
        ):
            parse_breaker(f"give_up_after:{value}")
    # A loop's circuit_breaker, over the process's setting.
    loop_policy = breaker_policy({"cool_down": 0.2, "give_up_after": 2})
    assert loop_policy is not None and loop_policy.give_up_after == 2
    with pytest.raises(ValueError, match=r"^circuit_breaker: give_up_after must be seconds"):
        breaker_policy({"give_up_after": "later"})


def test_a_loops_circuit_breaker_offers_and_checks_give_up_after() -> None:
    from engine.blocks import REGISTRY
    from engine.core.graph import parse_graph
    from engine.core.validation import validate
    from tests.engine.core.graphkit import block, graph

    schema = REGISTRY["loop"].config_schema["properties"]["circuit_breaker"]["properties"]
    part = schema["give_up_after"]
    assert (part["minimum"], part["maximum"], part["default"]) == (0, 604_800, 900)
    assert "0: wait forever" in part["description"]

    def loop_with(breaker: dict[str, Any]) -> Any:
        blocks = [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", circuit_breaker=breaker),
        ]
        return parse_graph(graph(blocks, [("webhook", "loop")]))

    assert validate(loop_with({"give_up_after": 2}), REGISTRY).errors == []
    errors = validate(loop_with({"give_up_after": -5}), REGISTRY).errors
    assert [e.field for e in errors] == ["circuit_breaker.give_up_after"]
    errors = validate(loop_with({"give_up_after": 700_000}), REGISTRY).errors
    assert [e.field for e in errors] == ["circuit_breaker.give_up_after"]
