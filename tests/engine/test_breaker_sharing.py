"""Provider breakers shared by every worker (engine/breaker_sharing.py, issue 9): a breaker
one process opens opens in the others with the same reason and end of cool-down, a close
decided in one closes them all, a late joiner applies the breakers open now, and a Resume
written for the cluster closes every process's breaker."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.utils import timezone

from engine.breaker_sharing import GRANT_RENEW, MIN_GAP, BreakerSharing, resume_everywhere
from engine.core.provider_settings import BreakerPolicy, KeyLimits, ProviderSettings
from engine.core.providers import ProviderRegistry
from engine.models import ProviderBreaker, ProviderGrant, ProviderLimit
from engine.polling import drop_broken_connections

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


async def test_every_worker_gives_up_on_the_outages_first_start(share: Any) -> None:
    """A worker whose breaker opened later, or that started during the outage, gives up
    `give_up_after` from when the outage first began anywhere, not from its own start."""
    policy = BreakerPolicy(window=2, min_calls=2, failure_rate=0.5, give_up_after=600.0)
    a, b, late = (ProviderRegistry(ProviderSettings(breaker=policy)) for _ in range(3))
    share(a, "worker-a")
    await fail_calls(a)
    first = breaker(a).outage_since
    for _ in range(250):  # a's row is written
        if await ProviderBreaker.objects.filter(key=KEY, state="open").aexists():
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    await fail_calls(b)  # b's own breaker opens half a second later, before it heard of a's
    assert breaker(b).outage_since - first >= 0.5
    share(b, "worker-b")  # its first look joins the open breaker and writes its own
    await until(lambda: breaker(b).outage_since - first < 0.1, "b to adopt a's start")
    assert breaker(b).give_up_at() == pytest.approx(breaker(a).give_up_at(), abs=0.1)
    row = await ProviderBreaker.objects.aget(key=KEY)
    assert row.outage_since is not None
    assert time.time() - row.outage_since >= 0.5  # b's later start did not replace a's

    await asyncio.sleep(0.3)
    share(late, "worker-late")
    await until(lambda: breaker(late).state == "open", "the late worker to pause")
    assert breaker(late).outage_since - first < 0.1

    assert a.resume(KEY)  # closed: the row forgets the outage
    await until(lambda: breaker(b).state == breaker(late).state == "closed", "all to close")
    row = await ProviderBreaker.objects.aget(key=KEY)
    assert (row.state, row.outage_since) == ("closed", None)


LLM = "api.openai.com"


async def spend(reg: ProviderRegistry, tokens: int, calls: list[int], ended: list[Any]) -> None:
    """Calls of `tokens` each, one after another, while `calls[0]` (shared by every caller)
    has calls left; each end is recorded (loop time, tokens) — what a provider counting
    answers would see."""
    state = reg.state(LLM)
    loop = asyncio.get_running_loop()
    while calls[0] > 0:
        calls[0] -= 1
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
    calls = [80]  # 8,000 tokens: demand past the budget for several windows
    await asyncio.gather(
        *(spend(a, 100, calls, ended["a"]) for _ in range(4)),
        *(spend(b, 100, calls, ended["b"]) for _ in range(4)),
    )
    both = ended["a"] + ended["b"]
    assert len(both) == 80
    assert busiest_window(both, window) <= budget
    assert ended["a"] and ended["b"]  # each got its share, not one the whole budget
    # Grants of several calls each, not a statement per call (a refused worker asks again
    # every look, so how many fewer depends on the machine's pace: fewer is the invariant).
    assert sharing_a.grants + sharing_b.grants < len(both)
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


# --- one worker's side, a look at a time (no thread of its own) ------------------------------

Run = Callable[..., Any]


@pytest.fixture
async def on_thread() -> AsyncIterator[Run]:
    """Runs a function on one thread kept for the test (its database connection too), as a
    sharing's own thread would."""
    executor = ThreadPoolExecutor(1)

    async def run(function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    yield run
    await run(connections.close_all)
    executor.shutdown()
    await sync_to_async(connections.close_all)()


def unstarted(reg: ProviderRegistry, name: str) -> BreakerSharing:
    sharing = BreakerSharing(asyncio.get_running_loop(), reg, SYNC, process=name)
    reg.sharing = sharing
    return sharing


def grant_base(process: str) -> dict[str, Any]:
    return {"process": process, "lease": 30.0, "recent": 5.0}


def renew(process: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(GRANT_RENEW, grant_base(process))
        return sorted(cursor.fetchall())


async def settle() -> None:
    """Let the callbacks a look scheduled on the loop run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_worker_that_holds_a_grant_it_does_not_fill_is_no_peer(on_thread: Run) -> None:
    """Finding 1: a worker that holds 400 of a 2,000 budget and wants no more leaves the
    busy worker the other 1,600 as its fair share (it alone wants), instead of making it a
    peer that holds the busy worker to half the rate."""
    settings = ProviderSettings(limits={LLM: KeyLimits(tpm=2_000)}, window=1.0)
    light, busy = (
        unstarted(ProviderRegistry(settings), "light"),
        unstarted(ProviderRegistry(settings), "busy"),
    )
    got = [0.0, 0.0]
    rates = (None, 2_000.0)
    sharers = await on_thread(light._grant, LLM, [0, 0], [0, 400], rates, got, grant_base("light"))
    assert got == [0.0, 400.0] and sharers == (1, 0.0, 0.0)
    got = [0.0, 0.0]
    sharers = await on_thread(busy._grant, LLM, [0, 0], [0, 2_000], rates, got, grant_base("busy"))
    assert got == [0.0, 1_600.0]  # all the light one leaves
    assert sharers == (1, 0.0, 400.0)  # nobody else wants: its fair share is all of it
    # The light one sees the busy one want (a peer); the busy one sees none.
    assert await on_thread(renew, "light") == [(LLM, 1, 0.0, 0.0)]
    assert await on_thread(renew, "busy") == [(LLM, 0, 0.0, 400.0)]


async def test_an_expired_grant_is_not_renewed_and_is_cut_to_what_is_left(on_thread: Run) -> None:
    """Finding 5: a worker whose grant expired (its look stalled past the lease) while
    another took the rate gets it neither renewed nor back: the live grants stay within
    the rate."""
    settings = ProviderSettings(limits={LLM: KeyLimits(tpm=2_000)}, window=1.0)
    stalled, other = (
        unstarted(ProviderRegistry(settings), "stalled"),
        unstarted(ProviderRegistry(settings), "other"),
    )
    rates = (None, 2_000.0)
    got = [0.0, 0.0]
    await on_thread(stalled._grant, LLM, [0, 0], [0, 1_000], rates, got, grant_base("stalled"))
    assert got == [0.0, 1_000.0]
    past = timezone.now() - dt.timedelta(seconds=1)
    await ProviderGrant.objects.filter(process="stalled").aupdate(expires=past)
    got = [0.0, 0.0]
    await on_thread(other._grant, LLM, [0, 0], [0, 2_000], rates, got, grant_base("other"))
    assert got == [0.0, 2_000.0]

    assert await on_thread(renew, "stalled") == []  # not renewed: it spends it no more
    row = await ProviderGrant.objects.aget(process="stalled")
    assert row.expires < timezone.now()
    got = [0.0, 0.0]  # what it kept is cut to what the other left: nothing
    await on_thread(stalled._grant, LLM, [0, 1_000], [0, 0], rates, got, grant_base("stalled"))
    assert got == [0.0, -1_000.0]
    live = [g async for g in ProviderGrant.objects.filter(key=LLM, expires__gt=timezone.now())]
    assert sum(g.tokens for g in live) <= 2_000


async def cut(reg: ProviderRegistry, key: str) -> None:
    """A 429 on one of the key's calls while its whole limit is in flight."""
    state = reg.state(key)
    permits = [await reg.acquire((state,), 0) for _ in range(state.limit or 1)]
    reg.release(permits.pop(), "throttled")
    for permit in permits:
        reg.release(permit, "neutral")


async def test_a_late_cut_does_not_undo_a_deeper_one(on_thread: Run) -> None:
    """Finding 3: a cuts 8 → 4 → 2; b, which had not heard, cuts 8 → 4 late: the row keeps
    2, b takes 2, and a is not raised back to 4."""
    settings = ProviderSettings(limits={KEY: KeyLimits(concurrency=8, start=1.0)})
    a, b = ProviderRegistry(settings), ProviderRegistry(settings)
    sharing_a, sharing_b = unstarted(a, "worker-a"), unstarted(b, "worker-b")
    await cut(a, KEY)
    await on_thread(sharing_a.look)
    await cut(a, KEY)
    assert a.state(KEY).limit == 2
    await on_thread(sharing_a.look)
    await cut(b, KEY)  # b had not heard of either
    assert b.state(KEY).limit == 4
    await on_thread(sharing_b.look)
    await settle()
    row = await ProviderLimit.objects.aget(key=KEY)
    assert (row.limit, row.process) == (2, "worker-a")
    assert b.state(KEY).limit == 2
    await on_thread(sharing_a.look)
    await settle()
    assert a.state(KEY).limit == 2


async def test_a_refused_step_up_takes_the_rows_limit_and_a_heard_cut_its_ceiling(
    on_thread: Run,
) -> None:
    """Finding 10: b, at 4 already, hears a's cut to 4 and keeps its ceiling (7); a step up
    of b's that the row refuses (past a recent cut's ceiling) brings b back to the row's 4."""
    a = ProviderRegistry(ProviderSettings(limits={KEY: KeyLimits(concurrency=8, start=1.0)}))
    b = ProviderRegistry(ProviderSettings(limits={KEY: KeyLimits(concurrency=8, start=0.5)}))
    sharing_a, sharing_b = unstarted(a, "worker-a"), unstarted(b, "worker-b")
    await cut(a, KEY)
    await on_thread(sharing_a.look)
    state_b = b.state(KEY)
    assert state_b.limit == 4
    await on_thread(sharing_b.look)
    await settle()
    assert (state_b.limit, state_b.ceiling) == (4, 7)
    state_b.limit = 8  # stepped up past the ceiling (as it did when it never had it)
    sharing_b.publish_limit(KEY, {"limit": 8, "cut": False, "ceiling": None})
    await on_thread(sharing_b.look)
    await settle()
    assert state_b.limit == 4
    assert (await ProviderLimit.objects.aget(key=KEY)).limit == 4


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


async def test_a_cut_survives_a_look_that_failed(on_thread: Run) -> None:
    """Finding 7: the look that was to write a cut fails (its connection was terminated):
    the cut is written by the next look, on a new connection, not lost."""
    settings = ProviderSettings(limits={KEY: KeyLimits(concurrency=8, start=1.0)})
    a = ProviderRegistry(settings)
    sharing = unstarted(a, "worker-a")
    await on_thread(sharing.look)
    await sync_to_async(terminate)(await on_thread(backend_pid))
    await cut(a, KEY)
    with pytest.raises(Exception):  # noqa: B017 - whichever error the dead connection gives
        await on_thread(sharing.look)
    await on_thread(drop_broken_connections)  # what the look-out does after a look
    await on_thread(sharing.look)
    row = await ProviderLimit.objects.aget(key=KEY)
    assert (row.limit, row.ceiling) == (4, 7)


class Watched(BreakerSharing):
    """A sharing that notes the database backend each look used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backends: list[int] = []

    def look(self) -> None:
        super().look()
        self.backends.append(backend_pid())


async def test_the_look_out_keeps_its_connection_between_looks() -> None:
    """Finding 8: looks woken every few tens of milliseconds use one database connection,
    not a new backend per look."""
    reg = ProviderRegistry()
    sharing = Watched(asyncio.get_running_loop(), reg, SYNC, process="worker-a")
    reg.sharing = sharing
    sharing.start()
    try:
        await until(lambda: len(sharing.backends) >= 5, "five looks", within=30)
    finally:
        await asyncio.to_thread(sharing.stop)
    assert len(set(sharing.backends)) == 1


async def test_a_key_whose_grant_fails_leaves_the_others_to_settle(on_thread: Run) -> None:
    """Finding 7: one key's grant failing (here a key PostgreSQL cannot store) is logged, and
    the keys after it still get theirs in the same look."""
    bad = "bad\x00key"
    settings = ProviderSettings(
        limits={bad: KeyLimits(tpm=2_000), LLM: KeyLimits(tpm=2_000)}, window=1.0
    )
    reg = ProviderRegistry(settings)
    sharing = unstarted(reg, "worker-a")
    for key in (bad, LLM):  # a call of each waits for a grant
        state = reg.state(key)
        assert reg._blocked((state,), 100, 0.0) is not None
    await on_thread(sharing.look)
    await settle()
    assert reg.state(LLM).held[1] >= 100
    assert reg.state(bad).held == [0.0, 0.0]


async def test_grants_are_spent_no_more_once_their_renewal_is_older_than_the_lease(
    on_thread: Run,
) -> None:
    """Finding 5, its other half: a look that fails soon after a renewal leaves the grants
    spent (they are still live), but once the last renewal is older than the lease (the
    others may have taken them) a failed look stops this worker spending them."""
    settings = ProviderSettings(limits={LLM: KeyLimits(tpm=2_000)}, window=1.0)
    reg = ProviderRegistry(settings)
    sharing = unstarted(reg, "worker-a")
    state = reg.state(LLM)
    assert reg._blocked((state,), 100, 0.0) is not None  # a call waits for a grant
    await on_thread(sharing.look)
    await settle()
    held = list(state.held)
    assert held[1] >= 100

    await sync_to_async(terminate)(await on_thread(backend_pid))
    with pytest.raises(Exception):  # noqa: B017 - whichever error the dead connection gives
        await on_thread(sharing.look)
    await settle()
    assert state.held == held  # renewed a moment ago: still its own
    await on_thread(drop_broken_connections)

    await on_thread(sharing.look)
    sharing._renewed_at = time.monotonic() - 2 * sharing.lease()  # then a long stall
    await sync_to_async(terminate)(await on_thread(backend_pid))
    with pytest.raises(Exception):  # noqa: B017
        await on_thread(sharing.look)
    await settle()
    assert state.held == [0.0, 0.0]


async def test_a_worker_that_starts_joins_the_limits_set_lately_within_its_own_cap(
    share: Any,
) -> None:
    """A late worker takes the limit the others cut to a moment ago (not the start of its
    own settings), not one set a day ago (it starts over), and never one past its own cap."""
    now = timezone.now()
    rows = [
        (KEY, 3, 5, 1, now),
        ("api.linkedin.com", 2, None, 2, now - dt.timedelta(days=1)),
        ("slack.com", 50, None, 3, now),
    ]
    for key, limit, ceiling, version, updated in rows:
        await ProviderLimit.objects.acreate(
            key=key,
            limit=limit,
            ceiling=ceiling,
            cut_at=updated.timestamp() if ceiling else None,
            process="worker-a",
            version=version,
            updated_at=updated,
        )
    limits = {
        KEY: KeyLimits(concurrency=8, start=1.0),
        "api.linkedin.com": KeyLimits(concurrency=8, start=1.0),
        "slack.com": KeyLimits(concurrency=4),  # starts at 2
    }
    late = ProviderRegistry(ProviderSettings(limits=limits))
    share(late, "worker-late")
    await until(lambda: late.state(KEY).limit == 3, "the late worker to take the cut")
    assert late.state(KEY).ceiling == 5
    await until(lambda: late.state("slack.com").limit == 4, "a limit past its cap, as its cap")
    assert late.state("api.linkedin.com").limit == 8  # a day-old cut: it starts over


def test_a_worker_refused_a_grant_asks_again_less_and_less_often() -> None:
    """After a refused grant the next look waits REFUSED_GAP, doubled for each refused look
    in a row up to REFUSED_MAX: a holder that wants no more gives back only once its window
    has emptied, and asking every 0.2 s meanwhile cost about a statement per call."""
    sharing = BreakerSharing(asyncio.new_event_loop(), registry(), 0.5, process="w")
    gaps = []
    for _ in range(5):
        sharing._refused = True  # what a look that got less than it asked for sets
        gaps.append(sharing.pause())
    assert gaps == [0.2, 0.4, 0.8, 1.0, 1.0]
    for _ in range(2000):  # a budget another worker holds for half an hour: still 1 s
        sharing._refused = True
        assert sharing.pause() == 1.0
    assert sharing.pause() == MIN_GAP  # a look that was not refused: back to the least gap
    sharing._refused = True
    assert sharing.pause() == 0.2
    sharing.loop.close()
