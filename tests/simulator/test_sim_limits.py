"""The simulator's own provider rate limits (`limits`): 429 past N calls in flight, or past a
token budget per window, with the peaks in the stats."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from simulator.control import SimulatorControlError
from simulator.testing import RunningSimulator

AUTH = {"Authorization": "Bearer test-key"}


async def test_more_than_n_in_flight_are_answered_429(sim: RunningSimulator) -> None:
    sim.control.configure(
        latency_ms=100, limits={"clearbit": {"max_in_flight": 3, "retry_after": "1"}}
    )
    async with httpx.AsyncClient(base_url=sim.base_url, headers=AUTH, timeout=10) as http:
        answers = await asyncio.gather(
            *(http.get("/v2/companies/find", params={"domain": f"d{i}.example"}) for i in range(5))
        )
        other = await http.get("/v2/people", params={"email": "a@b.example"})
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 200, 200, 429, 429]
    refused = [r for r in answers if r.status_code == 429]
    assert refused[0].headers["Retry-After"] == "1"
    assert refused[0].json()["error"]["type"] == "rate_limit"
    assert other.status_code == 200  # per route: LinkedIn has no limit
    stats = sim.control.stats()
    assert stats["throttled"]["clearbit"] == 2
    assert stats["peak_in_flight"]["clearbit"] in (4, 5)  # a refused call was in flight too
    sim.control.reset()
    assert sim.control.config()["limits"] == {}  # a reset lifts the limits


async def test_a_token_budget_per_window_refuses_what_would_pass_it(
    sim: RunningSimulator,
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "one two three four"}]}
    async with httpx.AsyncClient(base_url=sim.base_url, headers=AUTH, timeout=10) as http:
        first = await http.post("/v1/chat/completions", json=body)
        tokens = first.json()["usage"]["total_tokens"]
        sim.control.reset(limits={"openai": {"tokens_per_window": 2 * tokens, "window_s": 0.5}})
        answers = [(await http.post("/v1/chat/completions", json=body)) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert answers[2].json()["error"]["code"] == "rate_limit_exceeded"
        await asyncio.sleep(0.6)  # the window has passed
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
    stats = sim.control.stats()
    assert stats["tokens"]["openai"] == 3 * tokens
    assert stats["peak_tokens_in_window"]["openai"] == 2 * tokens
    assert stats["throttled"]["openai"] == 1


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        ({"nowhere": {"max_in_flight": 1}}, "unknown endpoint"),
        ({"clearbit": {"max_in_flight": 0}}, "max_in_flight must be null or a positive integer"),
        ({"openai": {"window_s": 0}}, "window_s must be positive"),
        ({"openai": {"burst": 1}}, "unknown limit keys: burst"),
    ],
)
def test_bad_limits_are_refused(sim: RunningSimulator, limits: dict, says: str) -> None:
    with pytest.raises(SimulatorControlError, match=says):
        sim.control.configure(limits=limits)
