"""Every recorded request carries the order of its start and end (`start_seq`, `end_seq`),
so a test can measure concurrency over any subset of requests exactly."""

from __future__ import annotations

import asyncio

import httpx

from simulator.testing import RunningSimulator, peak_concurrency

AUTH = {"Authorization": "Bearer x"}


async def test_sequence_numbers_order_overlapping_requests(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms={"linkedin": 60})
    async with httpx.AsyncClient(base_url=sim.base_url, headers=AUTH) as client:
        # Two groups (domains): three requests of a.example at once, then one of b.example.
        first = [client.get("/v2/people", params={"email": f"p{i}@a.example"}) for i in range(3)]
        await asyncio.gather(*first, client.get("/v2/people", params={"email": "q@b.example"}))
        await client.get("/v2/people", params={"email": "r@a.example"})
    received = sim.control.stats()["received"]
    assert all(e["start_seq"] < e["end_seq"] for e in received)
    seqs = [s for e in received for s in (e["start_seq"], e["end_seq"])]
    assert len(set(seqs)) == len(seqs)  # never a tie

    def domain(entry: dict[str, object]) -> str:
        return str(entry["query"]["email"]).split("@")[1]  # type: ignore[index]

    assert peak_concurrency(received, domain) == (4, 3, 2)
    assert peak_concurrency(received[-1:], domain) == (1, 1, 1)
