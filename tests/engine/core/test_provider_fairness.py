"""Fair share and priority between runs waiting for one provider key (engine/core/providers.py,
issue 9 item 4): which run's call a freed permit goes to."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.core.provider_settings import KeyLimits, ProviderSettings
from engine.core.providers import (
    CURRENT_STEP,
    ProviderRegistry,
    RunShare,
    StepTag,
    owner_share,
    run_share,
)

KEY = "h.example"


class Bus:
    def emit(self, type_: str, **data: Any) -> None:
        pass


class Calls:
    """Calls to KEY that hold their permit until released by name, recording the order in
    which they were let through."""

    def __init__(self, cap: int, aging: float = 60.0, burst: float = 0.0) -> None:
        self.reg = ProviderRegistry(
            ProviderSettings(
                limits={KEY: KeyLimits(concurrency=cap, start=1.0)},
                priority_aging=aging,
                new_run_burst=burst,
            )
        )
        self.order: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, share: RunShare, *names: str) -> None:
        for name in names:
            self.gates[name] = asyncio.Event()
            self.tasks[name] = asyncio.create_task(self._call(share, name))
            await asyncio.sleep(0)  # arrives (and queues) before the next one

    async def _call(self, share: RunShare, name: str) -> None:
        CURRENT_STEP.set(StepTag(name, "fetch", "fetch", Bus(), share))
        async with self.reg.call(KEY) as call:
            self.order.append(name)
            await self.gates[name].wait()
            call.observe(200)

    async def release(self, *names: str) -> None:
        for name in names:
            self.gates[name].set()
            await self.tasks[name]
            for _ in range(3):
                await asyncio.sleep(0)  # the freed permit's new holder records itself

    async def drain(self) -> None:
        while pending := [n for n in self.gates if not self.gates[n].is_set()]:
            await self.release(*[n for n in pending if n in self.order][:1] or pending[:1])


async def test_a_freed_permit_goes_to_the_run_with_the_fewest_in_flight() -> None:
    """A big run holds the whole cap with more waiting; a small run arriving later gets each
    freed permit until both hold half of it, not after the big run's backlog."""
    calls = Calls(cap=4)
    big, small = RunShare(), RunShare()
    await calls.start(big, *(f"a{i}" for i in range(10)))
    await calls.start(small, "b0", "b1", "b2", "b3")
    assert calls.order == ["a0", "a1", "a2", "a3"]
    await calls.release("a0")
    await calls.release("a1")
    assert calls.order[4:] == ["b0", "b1"]  # the small run had none in flight
    await calls.release("a2")
    assert calls.order[6:] == ["a4"]  # two each: the big run's turn
    await calls.release("b0")
    assert calls.order[7:] == ["b2"]  # within a run, first come first served
    await calls.drain()
    assert sorted(calls.order) == sorted(calls.gates)


async def test_a_run_new_to_the_key_takes_the_next_permits_up_to_the_limits_worth() -> None:
    """With the burst (the default: one limit's worth), the small run's first calls go before
    the big run's backlog; once it has had as many as the limit, it holds its fair share."""
    calls = Calls(cap=4, burst=1.0)
    big, small = RunShare(), RunShare()
    await calls.start(big, *(f"a{i}" for i in range(12)))
    await calls.release("a0", "a1", "a2", "a3")  # the big run has had 8 calls let through
    await calls.start(small, *(f"b{i}" for i in range(6)))
    await calls.release("a4", "a5", "a6", "a7")
    assert calls.order[8:] == ["b0", "b1", "b2", "b3"]  # four freed, four to the new run
    await calls.release("b0")
    assert calls.order[12:] == ["a8"]  # no longer new: the fewest in flight (0 to 3)
    await calls.release("b1")
    assert calls.order[13:] == ["a9"]  # 1 to 2: still the big run's turn
    await calls.release("b2")
    assert calls.order[14:] == ["b4"]  # 2 each, and the small run has had fewer calls
    await calls.drain()


async def test_weight_sets_the_share_of_the_cap() -> None:
    calls = Calls(cap=4)
    big, heavy = RunShare(weight=1), RunShare(weight=3)
    await calls.start(big, *(f"a{i}" for i in range(10)))
    await calls.start(heavy, *(f"b{i}" for i in range(10)))
    for name in ("a0", "a1", "a2", "a3"):
        await calls.release(name)
    # Three permits for the run of weight 3 for each one of the run of weight 1.
    assert calls.order[4:] == ["b0", "b1", "b2", "a4"]
    await calls.drain()


async def test_a_higher_priority_run_goes_first_strictly_without_aging() -> None:
    calls = Calls(cap=1, aging=0)
    low, high = RunShare(priority=0), RunShare(priority=5)
    await calls.start(low, "a0", "a1", "a2")
    await calls.start(high, "b0", "b1")
    await calls.drain()
    assert calls.order == ["a0", "b0", "b1", "a1", "a2"]


async def test_a_lower_priority_call_that_waited_the_aging_time_competes_as_an_equal() -> None:
    """The starvation guard: a call that has waited `priority_aging` seconds competes at the
    highest priority waiting (then fair share decides: the older, emptier run goes first);
    one that has not, waits behind higher priorities, whatever the gap."""
    calls = Calls(cap=1, aging=0.1)
    holder, low, high = RunShare(), RunShare(priority=-100), RunShare(priority=100)
    await calls.start(holder, "h")
    await calls.start(low, "a0")
    await calls.start(high, "b0", "b1")
    await calls.release("h")
    assert calls.order == ["h", "b0"]  # a0 has not waited 0.1 s yet
    await asyncio.sleep(0.15)
    await calls.release("b0")
    assert calls.order == ["h", "b0", "a0"]  # aged: an equal, and b1 is younger
    await calls.drain()
    assert calls.order == ["h", "b0", "a0", "b1"]


async def test_the_executors_of_one_run_share_one_share() -> None:
    one = run_share("run-1", weight=2, priority=3)
    assert run_share("run-1") is one and (one.weight, one.priority) == (2, 3)
    assert run_share("run-2") is not one


async def test_per_run_use_is_released_and_forgotten_with_the_run() -> None:
    calls = Calls(cap=2)
    share = RunShare()
    await calls.start(share, "a0", "a1", "a2")
    state = calls.reg.state(KEY)
    assert state.shares[share].in_flight == 2
    await calls.drain()
    assert state.shares[share].in_flight == 0
    del share
    calls.tasks.clear()
    import gc

    gc.collect()
    assert len(state.shares) == 0


async def test_calls_of_runs_taking_turns_each_count_for_their_own_run_and_owner() -> None:
    """A key remembers the last run's uses (a shortcut past the weak dictionaries): runs and
    owners that alternate on it still each count only their own calls."""
    calls = Calls(cap=10)
    first = run_share("turns-1", owner="ann")
    second = run_share("turns-2", owner="bob")
    third = run_share("turns-3", owner="ann")
    for share, name in [(first, "a0"), (second, "b0"), (first, "a1"), (third, "c0")]:
        await calls.start(share, name)
    state = calls.reg.state(KEY)
    assert [state.shares[s].in_flight for s in (first, second, third)] == [2, 1, 1]
    assert state.owners[owner_share("ann")].in_flight == 3
    assert state.owners[owner_share("bob")].in_flight == 1
    await calls.release("a0", "b0")
    assert [state.shares[s].in_flight for s in (first, second, third)] == [1, 0, 1]
    await calls.drain()
    assert [state.shares[s].in_flight for s in (first, second, third)] == [0, 0, 0]
    assert state.owners[owner_share("ann")].in_flight == 0


async def test_priority_and_weight_act_on_rate_waits_too() -> None:
    """No cap, a rate of 1 call per 0.05 s window: as the window moves on, the waiting call
    let through is the higher-priority run's, then by weight of recent calls."""
    reg = ProviderRegistry(
        ProviderSettings(limits={KEY: KeyLimits(rpm=1)}, window=0.05, priority_aging=0)
    )
    order: list[str] = []

    async def call(share: RunShare, name: str) -> None:
        CURRENT_STEP.set(StepTag(name, "fetch", "fetch", Bus(), share))
        async with reg.call(KEY) as c:
            order.append(name)
            c.observe(200)

    low, high = RunShare(priority=0), RunShare(priority=1)
    tasks = []
    for share, name in ((low, "l0"), (low, "l1"), (low, "l2"), (high, "h0"), (high, "h1")):
        tasks.append(asyncio.create_task(call(share, name)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == ["l0", "h0", "h1", "l1", "l2"]


async def test_owners_share_a_key_equally_whatever_weight_their_runs_claim() -> None:
    """Weight is relative within an owner: a run given weight 100 by one owner gets no more
    of a shared key than another owner's run of weight 1 (before, 100 permits to 1)."""
    calls = Calls(cap=4)
    greedy = RunShare(weight=100, owner=owner_share("owner-a"))
    modest = RunShare(weight=1, owner=owner_share("owner-b"))
    await calls.start(greedy, *(f"a{i}" for i in range(10)))
    await calls.start(modest, *(f"b{i}" for i in range(10)))
    for name in ("a0", "a1", "a2", "a3"):
        await calls.release(name)
    assert calls.order[4:] == ["b0", "b1", "a4", "a5"]  # two each, as with equal weights
    await calls.drain()


async def test_weight_still_divides_one_owners_share_between_their_runs() -> None:
    """Owner a's two runs (weights 3 and 1) split owner a's half of the key 3 to 1; owner b
    keeps its half."""
    calls = Calls(cap=8)
    owner_a = owner_share("owner-a")
    heavy, light = RunShare(weight=3, owner=owner_a), RunShare(weight=1, owner=owner_a)
    other = RunShare(owner=owner_share("owner-b"))
    await calls.start(heavy, *(f"h{i}" for i in range(20)))
    await calls.start(light, *(f"l{i}" for i in range(20)))
    await calls.start(other, *(f"o{i}" for i in range(10)))
    assert calls.order == [f"h{i}" for i in range(8)]  # first come while the cap was free
    for i in range(8):
        await calls.release(f"h{i}")
    state = calls.reg.state(KEY)
    held = {share: state.shares[share].in_flight for share in (heavy, light, other)}
    assert held[other] == 4  # the owners' halves
    assert (held[heavy], held[light]) == (3, 1)  # owner a's half by weight
    await calls.drain()


async def test_priority_orders_one_owners_runs_not_other_owners() -> None:
    """Priority 100 puts an owner's run before their own lower runs, never before another
    owner with fewer calls in flight."""
    calls = Calls(cap=2, aging=0)
    owner_a = owner_share("owner-a")
    low = RunShare(priority=0, owner=owner_a)
    urgent = RunShare(priority=100, owner=owner_a)
    other = RunShare(priority=0, owner=owner_share("owner-b"))
    await calls.start(low, "l0", "l1")  # owner a holds the cap
    await calls.start(other, "o0", "o1")
    await calls.start(urgent, "u0", "u1")
    await calls.release("l0")
    assert calls.order[2:] == ["o0"]  # owner b had none in flight: its turn, whatever 100
    await calls.release("l1")
    assert calls.order[3:] == ["u0"]  # one each; owner a's next is its priority-100 run
    await calls.drain()
