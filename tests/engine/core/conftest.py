"""Fixtures for engine core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.testing import RunningSimulator, run_in_thread


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with run_in_thread() as running:
        yield running
