"""A registry's side of sharing a provider key's governance between workers (issue 9,
engine/breaker_sharing.py does the database side): its grant of the cluster's rates
(`_granted`, `rate_plan`, `rate_granted`, `rate_peers`) and the adaptive limit it shares
(`_adapt`, `apply_limit`), against a fake share that records what it was told."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from engine.core.provider_settings import KeyLimits, ProviderSettings
from engine.core.providers import ProviderRegistry, _now
from engine.core.slots import CLUSTER_REASON, Notice, provider_slot_key

LLM = "api.openai.com"
KEY = "api.clearbit.com"


class FakeShare:
    """What the registry tells the cluster: breaker changes, limits, wakes."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, dict[str, Any]]] = []
        self.limits: list[tuple[str, dict[str, Any]]] = []
        self.wakes = 0

    def publish(self, key: str, change: dict[str, Any]) -> None:
        self.changes.append((key, change))

    def publish_limit(self, key: str, change: dict[str, Any]) -> None:
        self.limits.append((key, change))

    def wake(self) -> None:
        self.wakes += 1


class FakeCluster:
    """Cluster slots that hold at once, recording (key, cap) of each hold."""

    def __init__(self) -> None:
        self.held: list[tuple[str, int]] = []

    @contextlib.asynccontextmanager
    async def _hold(self, key: str, cap: int) -> AsyncIterator[int]:
        self.held.append((key, cap))
        yield 0

    def hold(
        self, key: str, cap: int, notice: Notice | None = None
    ) -> contextlib.AbstractAsyncContextManager[int]:
        return self._hold(key, cap)


def shared(
    limits: dict[str, KeyLimits], window: float = 60.0
) -> tuple[ProviderRegistry, FakeShare]:
    registry = ProviderRegistry(ProviderSettings(limits=limits, window=window))
    share = FakeShare()
    registry.sharing = share
    return registry, share


async def let_through(registry: ProviderRegistry, key: str, tokens: int, most: int) -> int:
    """How many calls of `tokens` start at once (up to `most`); each stays in flight."""
    state = registry.state(key)
    started = 0
    while started < most and registry._blocked((state,), tokens, _now()) is None:
        registry._grant((state,), tokens)
        started += 1
    return started


async def test_the_fair_share_leaves_out_what_workers_that_want_no_more_hold() -> None:
    """Finding 1: a worker holding a grant it does not fill (it wants no more) is not a peer:
    a busy worker alone in wanting spends its whole grant, and with one more wanting worker
    the rate left by the idle holder is split between the two, not the whole rate by three."""
    registry, _ = shared({LLM: KeyLimits(tpm=2_000)})
    state = registry.state(LLM)
    # Nobody else wants: its 1,600 are all its own (another holds 400 it does not fill).
    registry.rate_granted(LLM, [0.0, 1_600.0], 1, (0.0, 400.0))
    assert state.fair(1, 2_000) == 2_000
    assert await let_through(registry, LLM, 100, 30) == 16
    blocked = registry._blocked((state,), 100, _now())
    assert blocked is not None and blocked.reason == CLUSTER_REASON  # it asks for more

    registry, _ = shared({LLM: KeyLimits(tpm=2_000)})
    state = registry.state(LLM)
    # One other wants, a third holds 400 and wants no more: (2,000 - 400) / 2 each.
    registry.rate_granted(LLM, [0.0, 1_000.0], 2, (0.0, 400.0))
    assert state.fair(1, 2_000) == 800
    assert await let_through(registry, LLM, 100, 30) == 8
    blocked = registry._blocked((state,), 100, _now())
    assert blocked is not None and blocked.reason == "tokens/min"  # its window frees it
    plan = registry.rate_plan()  # it gives back above its fair share
    assert [entry["keep"][1] for entry in plan] == [800.0]


async def test_a_grant_that_was_not_renewed_is_no_longer_spent() -> None:
    """Finding 5: a key whose grant had expired (not renewed by the look) is spent no more;
    a grant cut because others took part of it while it was expired shrinks here too."""
    registry, _ = shared({LLM: KeyLimits(tpm=2_000)})
    state = registry.state(LLM)
    registry.rate_granted(LLM, [0.0, 1_000.0], 1)
    registry.rate_peers({LLM: (1, 0.0, 0.0)}, renewed=[LLM])
    assert state.held == [0.0, 1_000.0]
    registry.rate_peers({}, renewed=[])
    assert state.held == [0.0, 0.0]
    assert await let_through(registry, LLM, 100, 5) == 0

    registry.rate_granted(LLM, [0.0, 1_000.0], 1)
    registry.rate_granted(LLM, [0.0, -700.0], 1)  # expired, 300 left by the others
    assert state.held == [0.0, 300.0]
    assert await let_through(registry, LLM, 100, 5) == 3


async def test_a_failover_look_asks_for_no_grant() -> None:
    """Finding 9: `available` (a failover choosing an endpoint) neither notes a lack of grant
    nor wakes the look: only a call that waits asks for its share of the rate."""
    registry, share = shared({KEY: KeyLimits(rpm=600)})
    state = registry.state(KEY)
    assert registry.available(KEY)  # a grant is worth waiting for
    assert share.wakes == 0 and state.short == [0.0, 0.0]
    assert registry.rate_plan() == []  # nothing asked for

    assert registry._blocked((state,), 0, _now()) is not None  # a call that would wait
    assert share.wakes == 1 and state.short[0] == 1
    (entry,) = registry.rate_plan()
    assert entry["ask"][0] == 60  # a tenth of the rate at once


async def test_a_429_sets_the_ceiling_from_the_cluster_limit_not_this_workers_calls() -> None:
    """Finding 2: with the limit shared, a 429 on a worker with 2 of the cluster's 8 calls
    halves the cluster's limit and puts the ceiling under the limit that failed (7), not
    under this worker's calls (1), which would hold every worker near its floor."""
    registry, share = shared({KEY: KeyLimits(concurrency=8, start=1.0)})
    state = registry.state(KEY)
    first, second = registry._grant((state,), 0), registry._grant((state,), 0)
    registry.release(first, "throttled")
    registry.release(second, "neutral")
    assert (state.limit, state.ceiling) == (4, 7)
    assert share.limits == [(KEY, {"limit": 4, "cut": True, "ceiling": 7})]

    alone = ProviderRegistry(ProviderSettings(limits={KEY: KeyLimits(concurrency=8, start=1.0)}))
    state = alone.state(KEY)  # one process: what failed is its own calls
    first, second = alone._grant((state,), 0), alone._grant((state,), 0)
    alone.release(first, "throttled")
    assert (state.limit, state.ceiling) == (1, 1)


async def test_only_keys_with_settings_share_their_limit() -> None:
    """Finding 4: a key met by chance (a lead's own website) that times out keeps its limit
    to this process: no row is written, a row of such a key read from others is ignored, and
    its calls hold no cluster slot; a configured key's calls hold theirs under its limit."""
    registry, share = shared({KEY: KeyLimits(concurrency=4, start=1.0)})
    cluster = FakeCluster()
    registry.cluster = cluster
    site = "www.some-lead.example"
    async with registry.call(site) as call:
        call.observe(200)
    permit = registry._grant((registry.state(site),), 0)
    registry.release(permit, "timeout")
    assert registry.state(site).limit is not None  # adaptive here
    assert share.limits == []
    async with registry.call(site) as call:
        call.observe(200)
    async with registry.call(KEY) as call:
        call.observe(200)
    assert cluster.held == [(provider_slot_key(KEY), 4)]

    before = set(registry._states)
    registry.apply_limit("www.another-lead.example", 2, 3, 0.0)
    assert set(registry._states) == before


async def test_another_workers_cut_to_the_same_limit_still_sets_its_ceiling() -> None:
    """Finding 10: a cut heard from another worker records its ceiling even when this
    worker's limit is that already, so no step up passes it for the probe time."""
    registry, _ = shared({KEY: KeyLimits(concurrency=8, start=0.5)})
    state = registry.state(KEY)
    assert state.limit == 4
    registry.apply_limit(KEY, 4, 5, 0.0)
    assert state.ceiling == 5
