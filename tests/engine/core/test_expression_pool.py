"""Expressions evaluate on threads of their own, shared fairly between owners."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from engine.core import expression_pool, expressions
from engine.core.expression_pool import ExpressionPool
from engine.core.providers import CURRENT_STEP, RunShare, StepTag, owner_share


async def wait_until(predicate: Any, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[ExpressionPool]:
    small = ExpressionPool(threads=4, owner_threads=2)
    monkeypatch.setattr(expression_pool, "POOL", small)
    yield small


class _Bus:
    def emit(self, type_: Any, **data: Any) -> None:
        pass


def as_owner(owner: str) -> None:
    """This task's steps are the owner's (as the executor tags each attempt)."""
    CURRENT_STEP.set(StepTag("", "b", "b", _Bus(), RunShare(owner=owner_share(owner))))


def held(release: threading.Event, started: list[str], name: str) -> Any:
    def evaluate(*, cancel: threading.Event) -> str:
        started.append(name)
        while not release.wait(0.005):  # a slow evaluation, stopped at its next value
            if cancel.is_set():
                raise expressions.ExpressionError("stopped")
        return name

    return evaluate


async def evaluate_as(owner: str, fn: Any) -> Any:
    as_owner(owner)
    return await expressions._on_thread_until_cancelled(fn)


async def test_one_owner_holds_at_most_its_share_and_another_owner_runs_at_once(
    pool: ExpressionPool,
) -> None:
    release, started = threading.Event(), []
    heavy = [
        asyncio.create_task(evaluate_as("mallory", held(release, started, f"m{i}")))
        for i in range(10)
    ]
    try:
        await wait_until(lambda: pool.running("mallory") >= 2, 5)
        await asyncio.sleep(0.05)
        assert pool.running("mallory") == 2  # its share: the others queue behind its own
        assert len(started) == 2
        begun = time.monotonic()
        async with asyncio.timeout(5):
            result = await evaluate_as("alice", lambda *, cancel: "alice's")
        assert result == "alice's"
        assert time.monotonic() - begun < 1.0  # prompt, not behind mallory's queue
        # Two owners' heavy work at once: each gets its share of the four threads.
        alices = [
            asyncio.create_task(evaluate_as("alice", held(release, started, f"a{i}")))
            for i in range(3)
        ]
        await wait_until(lambda: pool.running("alice") >= 2, 5)
        assert pool.running("mallory") == 2
        release.set()
        async with asyncio.timeout(10):
            assert len(await asyncio.gather(*heavy, *alices)) == 13
    finally:
        release.set()


async def test_a_cancelled_run_drops_its_queued_evaluations(pool: ExpressionPool) -> None:
    release, started = threading.Event(), []
    tasks = [
        asyncio.create_task(evaluate_as("mallory", held(release, started, f"m{i}")))
        for i in range(8)
    ]
    await wait_until(lambda: pool.running("mallory") >= 2, 5)
    for task in tasks:  # the run's cancel
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # The two running ones stop at their next value and the queued ones are dropped. A thread
    # freed by a stopped one may take a queued entry whose task has not heard the cancel yet
    # (the tasks hear it one after another): that one stops at its next value too.
    await wait_until(lambda: not pool.running("mallory"), 5)
    await asyncio.sleep(0.05)
    assert {"m0", "m1"} <= set(started) and len(started) <= 4, started
    assert all(task.cancelled() for task in tasks)
    assert (await evaluate_as("mallory", lambda *, cancel: 42)) == 42


async def test_owners_with_queued_work_take_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    single = ExpressionPool(threads=1, owner_threads=1)
    monkeypatch.setattr(expression_pool, "POOL", single)
    release, order = threading.Event(), []
    first = asyncio.create_task(evaluate_as("a", held(release, order, "a0")))
    await wait_until(lambda: bool(order), 5)

    def quick(name: str) -> Any:
        return lambda *, cancel: order.append(name)

    queued = [asyncio.create_task(evaluate_as("a", quick(f"a{i}"))) for i in range(1, 4)]
    await asyncio.sleep(0.01)
    queued += [asyncio.create_task(evaluate_as("b", quick(f"b{i}"))) for i in range(1, 3)]
    await asyncio.sleep(0.01)
    release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, *queued)
    assert order == ["a0", "a1", "b1", "a2", "b2", "a3"]


async def test_a_heavy_transform_of_one_owner_does_not_hold_another_owners_up(
    pool: ExpressionPool,
) -> None:
    # The real evaluation (search_async) as the defect's repro had it, made smaller.
    data = {"x": list(range(200_000))}
    heavy_expression = "[" + ", ".join(["length(x[?@==`0`])"] * 10) + "]"
    heavy = [
        asyncio.create_task(
            _search_as("mallory", heavy_expression, data),
        )
        for _ in range(6)
    ]
    await wait_until(lambda: pool.running("mallory") >= 2, 10)
    begun = time.monotonic()
    assert await _search_as("alice", "length(x)", {"x": [1, 2, 3]}) == 3
    waited = time.monotonic() - begun
    for task in heavy:
        task.cancel()
    await asyncio.gather(*heavy, return_exceptions=True)
    # Alice's tiny evaluation shares the interpreter lock with two busy threads: slower
    # than alone, never behind mallory's queue (seconds).
    assert waited < 1.0


async def _search_as(owner: str, expression: str, data: Any) -> Any:
    as_owner(owner)
    return await expressions.search_async(expression, data, max_bytes=10_000_000)


def test_the_pool_size_and_share_are_checked() -> None:
    with pytest.raises(ValueError, match="KLYNTOS_EXPRESSION_THREADS"):
        ExpressionPool(threads=0)
    with pytest.raises(ValueError, match="KLYNTOS_EXPRESSION_OWNER_THREADS"):
        ExpressionPool(threads=2, owner_threads=3)
    assert ExpressionPool(threads=6).owner_threads == 3
    assert ExpressionPool(threads=1).owner_threads == 1


async def test_an_evaluation_counts_for_the_step_owner_or_else_the_run_owner() -> None:
    async def owner_seen(step_owner: str | None, run_owner: str) -> str:
        expressions.EXPRESSION_OWNER.set(run_owner)  # as the executor does when a run starts
        if step_owner is not None:
            as_owner(step_owner)
        return expressions._owner()

    # A loop's aggregations run outside any step's attempt: the run's owner.
    assert await asyncio.create_task(owner_seen(None, "alice")) == "alice"
    assert await asyncio.create_task(owner_seen("bob", "alice")) == "bob"
    assert await asyncio.create_task(owner_seen(None, "")) == ""
