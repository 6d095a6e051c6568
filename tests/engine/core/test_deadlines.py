"""Attempt deadlines on the timer wheel behave as asyncio.timeout: due, they cancel the task
and raise TimeoutError (only for their own cancel), never early and at most a tick late;
moved or held while a provider is waited for; and the loop keeps no timer once none waits."""

from __future__ import annotations

import asyncio

import pytest

from engine.core import deadlines
from engine.core.deadlines import TICK, Deadline, deadline_after

# How late a deadline may fire here: its tick, plus a busy shared machine's scheduling (a CI
# runner can stall the loop for a while; what matters is that it is never early).
LATE = TICK + 0.3


async def test_a_due_deadline_raises_timeout_error_not_before_its_moment() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        async with deadline_after(0.05) as deadline:
            await asyncio.sleep(5)
    took = loop.time() - began
    assert 0.05 <= took <= 0.05 + LATE
    assert deadline.expired()


async def test_a_deadline_not_due_lets_the_block_finish_and_leaves_no_timer() -> None:
    async with deadline_after(30) as deadline:
        await asyncio.sleep(0.01)
    assert not deadline.expired()
    wheel = deadlines._wheel(asyncio.get_running_loop())
    assert wheel._timer is None and not wheel._buckets


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    entered = asyncio.Event()

    async def body() -> None:
        async with deadline_after(30):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_after_the_deadline_fired_is_not_swallowed() -> None:
    """The deadline cancelled the task, then someone else did too: not a timeout."""

    async def body() -> None:
        async with deadline_after(0.01):
            try:
                await asyncio.sleep(5)
            finally:
                current = asyncio.current_task()
                assert current is not None
                current.cancel()  # a second cancel, arriving as the deadline's lands
                await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(body())


async def test_held_and_moved_as_a_provider_wait_does() -> None:
    """reschedule(None) holds it (a wait for a provider is not the attempt's time); moved to
    a later moment it fires then; moved into the past it fires at once."""
    loop = asyncio.get_running_loop()
    async with deadline_after(0.02) as deadline:
        deadline.reschedule(None)
        assert deadline.when() is None
        await asyncio.sleep(0.08)  # past the first moment: held
        assert not deadline.expired()
    began = loop.time()
    with pytest.raises(TimeoutError):
        async with deadline_after(30) as deadline:
            deadline.reschedule(loop.time() + 0.05)
            await asyncio.sleep(5)
    assert 0.05 <= loop.time() - began <= 0.05 + LATE
    with pytest.raises(TimeoutError):
        async with deadline_after(30) as deadline:
            deadline.reschedule(loop.time() - 1)
            await asyncio.sleep(5)


async def test_nested_deadlines_each_answer_for_their_own() -> None:
    async with deadline_after(30) as outer:
        with pytest.raises(TimeoutError):
            async with deadline_after(0.02) as inner:
                await asyncio.sleep(5)
        assert inner.expired() and not outer.expired()


async def test_many_deadlines_fire_in_their_ticks_and_ended_ones_never() -> None:
    """1,000 attempts, every fifth ending early: the others time out, none before its
    moment, none more than a tick late; the wheel is empty afterwards."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    outcomes: list[str] = []

    async def attempt(i: int) -> None:
        ends_early = i % 5 == 0
        # An attempt that ends early has a deadline seconds away, so a loaded machine
        # stalling the loop past a few milliseconds cannot make it time out for real.
        delay = (2.0 if ends_early else 0.01) + (i % 37) * 0.003
        try:
            async with deadline_after(delay) as deadline:
                due = deadline.when()
                await asyncio.sleep(0.001 if ends_early else 5)
            outcomes.append("done")
        except TimeoutError:
            assert due is not None
            late.append(loop.time() - due)
            outcomes.append("timeout")

    await asyncio.gather(*(attempt(i) for i in range(1000)))
    assert outcomes.count("done") == 200 and outcomes.count("timeout") == 800
    assert min(late) >= 0
    # 800 cancels handled in one turn: on a loaded machine that turn once took 0.72 s. Bounded
    # well short of the 5 s sleep, so deadlines that never fire (or fire seconds late) fail.
    assert max(late) <= 2.0, max(late)
    wheel = deadlines._wheel(loop)
    assert wheel._timer is None and not wheel._buckets


async def test_misuse_is_refused() -> None:
    deadline = Deadline(None)
    with pytest.raises(RuntimeError):
        deadline.reschedule(1.0)  # not entered
    async with deadline:
        pass
    with pytest.raises(RuntimeError):
        async with deadline:  # entered once only
            pass
    async with deadline_after(None) as never:
        await asyncio.sleep(0.02)
    assert never.when() is None and not never.expired()
