"""Provider breakers shared by every worker (engine/breaker_sharing.py, issue 9): a breaker
one process opens opens in the others with the same reason and end of cool-down, a close
decided in one closes them all, a late joiner applies the breakers open now, and a Resume
written for the cluster closes every process's breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from engine.breaker_sharing import BreakerSharing, resume_everywhere
from engine.core.providers import BreakerPolicy, KeyLimits, ProviderRegistry, ProviderSettings
from engine.models import ProviderBreaker, ProviderGrant, ProviderLimit

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "api.clearbit.com"
SYNC = 0.05


def registry(mode: str = "auto") -> ProviderRegistry:
    policy = BreakerPolicy(mode=mode, window=2, min_calls=2, failure_rate=0.5, cool_down=30.0)
    return ProviderRegistry(ProviderSettings(breaker=policy))


async def fail_calls(reg: ProviderRegistry, n: int = 2) -> None:
    state = reg.state(KEY)
    for _ in range(n):
        permit = await reg.acquire((state,), 0)
        reg.release(permit, "server_error")


async def until(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def breaker(reg: ProviderRegistry) -> Any:
    return reg.state(KEY).breaker


@pytest.fixture
async def share() -> AsyncIterator[Callable[[ProviderRegistry, str], BreakerSharing]]:
    started: list[BreakerSharing] = []

    def start(reg: ProviderRegistry, name: str) -> BreakerSharing:
        sharing = BreakerSharing(asyncio.get_running_loop(), reg, SYNC, process=name)
        reg.sharing = sharing
        started.append(sharing.start())  # type: ignore[arg-type]
        return sharing

    yield start
    for sharing in started:
        await asyncio.to_thread(sharing.stop)
    await sync_to_async(connections.close_all)()


async def test_a_breaker_opened_in_one_worker_opens_in_the_other_and_closes_with_it(
    share: Any,
) -> None:
    a, b = registry(), registry()
    share(a, "worker-a")
    share(b, "worker-b")
    await fail_calls(a)
    assert breaker(a).state == "open"
    await until(lambda: breaker(b).state == "open", "worker b to pause")
    assert breaker(b).reason == breaker(a).reason == "2 of 2 calls failed"
    assert not b.available(KEY)  # no call starts on b either
    # The same end of cool-down (their clocks differ by what the sync took at most).
    assert abs((breaker(b).until - breaker(b).since) - (breaker(a).until - breaker(a).since)) < 1
    row = await ProviderBreaker.objects.aget(key=KEY)
    assert (row.state, row.process) == ("open", "worker-a") and row.until is not None

    assert a.resume(KEY)  # a close decided on a (its probes succeeded, or a Resume there)
    await until(lambda: breaker(b).state == "closed", "worker b to close")
    assert breaker(b).reason == "resumed" and b.available(KEY)


async def test_a_worker_that_starts_late_joins_an_open_breaker(share: Any) -> None:
    a = registry(mode="manual")
    share(a, "worker-a")
    await fail_calls(a)
    row = None
    for _ in range(250):
        row = await ProviderBreaker.objects.filter(key=KEY).afirst()
        if row is not None:
            break
        await asyncio.sleep(0.02)
    assert row is not None and row.state == "open" and row.until is None  # manual: no end

    late = registry()
    share(late, "worker-late")
    await until(lambda: breaker(late).state == "open", "the late worker to pause")
    assert breaker(late).until is None  # manual, as decided: it waits for a Resume


async def test_a_resume_for_the_cluster_closes_every_workers_breaker(share: Any) -> None:
    a, b = registry(mode="manual"), registry(mode="manual")
    share(a, "worker-a")
    share(b, "worker-b")
    await fail_calls(a)
    await until(lambda: breaker(b).state == "open", "worker b to pause")

    assert await sync_to_async(resume_everywhere)(KEY)  # what the web process's Resume does
    await until(lambda: breaker(a).state == breaker(b).state == "closed", "both to close")
    assert breaker(a).reason == breaker(b).reason == "resumed"
    assert not await sync_to_async(resume_everywhere)(KEY)  # nothing open any more
    assert not await sync_to_async(resume_everywhere)("api.nowhere.example")


LLM = "api.openai.com"


async def spend(reg: ProviderRegistry, tokens: int, stop: float, ended: list[Any]) -> None:
    """Calls of `tokens` each, one after another, until loop time `stop`; each end is
    recorded (loop time, tokens) — what a provider counting answers would see."""
    state = reg.state(LLM)
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        permit = await reg.acquire((state,), tokens)
        await asyncio.sleep(0.01)
        reg.release(permit, "ok", used_tokens=tokens)
        ended.append((loop.time(), tokens))


def busiest_window(ended: list[tuple[float, int]], window: float) -> int:
    """The most tokens answered within any `window` seconds."""
    ended = sorted(ended)
    best, total, first = 0, 0, 0
    for at, tokens in ended:
        total += tokens
        while ended[first][0] <= at - window:
            total -= ended[first][1]
            first += 1
        best = max(best, total)
    return best


async def test_two_workers_share_one_token_budget_and_never_pass_it(share: Any) -> None:
    """tokens/min held cluster-wide: two processes' registries, each with calls enough for
    the whole budget, together never let through more than the budget in any window, and
    both get calls through (grants move to where they are wanted)."""
    budget, window = 2_000, 1.0
    settings = ProviderSettings(limits={LLM: KeyLimits(tpm=budget)}, window=window)
    a, b = ProviderRegistry(settings), ProviderRegistry(settings)
    sharing_a, sharing_b = share(a, "worker-a"), share(b, "worker-b")
    ended: dict[str, list[Any]] = {"a": [], "b": []}
    stop = asyncio.get_running_loop().time() + 4 * window
    await asyncio.gather(
        *(spend(a, 100, stop, ended["a"]) for _ in range(4)),
        *(spend(b, 100, stop, ended["b"]) for _ in range(4)),
    )
    both = ended["a"] + ended["b"]
    assert sum(t for _, t in both) > 2 * budget  # demand past the budget, for several windows
    assert busiest_window(both, window) <= budget
    assert ended["a"] and ended["b"]  # each got its share, not one the whole budget
    # Grants of several calls each, not a statement per call.
    assert sharing_a.grants + sharing_b.grants < len(both) / 2
    grants = [g async for g in ProviderGrant.objects.filter(key=LLM)]
    assert sum(g.tokens for g in grants) <= budget


async def test_a_limit_one_worker_cuts_bounds_the_other(share: Any) -> None:
    """AIMD held cluster-wide: a 429 on one process halves the key's limit, and the other
    process lets through no more than the halved limit from then on."""
    settings = ProviderSettings(limits={KEY: KeyLimits(concurrency=8, start=1.0)})
    a, b = ProviderRegistry(settings), ProviderRegistry(settings)
    share(a, "worker-a")
    share(b, "worker-b")
    state_a, state_b = a.state(KEY), b.state(KEY)
    assert state_a.limit == state_b.limit == 8
    permits = [await a.acquire((state_a,), 0) for _ in range(8)]
    a.release(permits.pop(), "throttled")  # the provider refused past what it takes
    for permit in permits:
        a.release(permit, "neutral")
    assert state_a.limit == 4
    await until(lambda: state_b.limit == 4, "worker b to take the halved limit")
    row = await ProviderLimit.objects.aget(key=KEY)
    assert (row.limit, row.process) == (4, "worker-a") and row.ceiling == 7

    held = [await b.acquire((state_b,), 0) for _ in range(4)]
    fifth = asyncio.ensure_future(b.acquire((state_b,), 0))
    await asyncio.sleep(0.2)
    assert not fifth.done()  # the other's cut holds here
    b.release(held.pop(), "ok")
    held.append(await fifth)
    for permit in held:
        b.release(permit, "neutral")
