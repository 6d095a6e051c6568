"""Fixtures for engine core tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.testing import RunningSimulator, run_in_thread


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with run_in_thread() as running:
        yield running


@pytest.fixture
async def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What the running loop hands to an executor thread from here on, in order."""
    loop = asyncio.get_running_loop()
    hops: list[object] = []
    to_thread = loop.run_in_executor

    def run_in_executor(executor: Any, func: Any, *args: Any) -> Any:
        hops.append(func)
        return to_thread(executor, func, *args)

    monkeypatch.setattr(loop, "run_in_executor", run_in_executor)
    return hops
