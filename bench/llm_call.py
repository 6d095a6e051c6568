"""Bench l: the event-loop CPU of one Agent block call (one chat completion).

N calls of `AgentBlock.run` (the lead template's agent_analysis: system + user prompt and a
JSON-schema response format), `concurrency` at a time, against the simulator in its own
process at zero latency. Only this process's CPU is counted (time.process_time), so the
figure is what the engine's loop thread spends per call: prompts, the openai SDK, httpx,
the guarded transport, aiohttp, provider governance and the answer's parsing.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench.harness import build_services, simulator, template_block, template_graph
from engine.blocks.agent import AgentBlock
from engine.core.refs import Scope
from engine.core.spec import BlockContext

WARMUP = 200


def _lead(i: int) -> dict[str, Any]:
    return {
        "name": f"Lead {i}",
        "company": f"Company {i}",
        "title": "VP Engineering",
        "email": f"lead{i}@example.com",
        "message": "We are evaluating workflow tools for our sales team.",
    }


async def _calls(
    base_url: str, n: int, concurrency: int, rounds: int
) -> list[tuple[float, float, float]]:
    config = template_block(template_graph(), "agent_analysis")["config"]
    block = AgentBlock()
    services = build_services(base_url)
    scope = Scope({})

    async def one(i: int) -> None:
        ctx = BlockContext(
            block_id="agent_analysis",
            block_name="agent_analysis",
            config=config,
            raw_config=config,
            scope=scope.child({"lead": _lead(i)}),
            services=services,
            attempt=1,
        )
        output = await block.run(ctx)
        if "budget_estimate" not in output:
            raise RuntimeError(f"no structured output: {output}")

    async def worker(start: int, count: int) -> None:
        for i in range(start, start + count):
            await one(i)

    async def batch(count: int) -> None:
        per = count // concurrency
        await asyncio.gather(*(worker(k * per, per) for k in range(concurrency)))

    try:
        await batch(WARMUP)
        spent = []
        for _ in range(rounds):
            cpu, times = time.process_time(), os.times()
            await batch(n)
            after = os.times()
            user, system = after.user - times.user, after.system - times.system
            spent.append((time.process_time() - cpu, user, system))
        return spent
    finally:
        await services.aclose()


def run(
    *, quick: bool = False, n: int | None = None, concurrency: int = 10, rounds: int = 3
) -> dict[str, Any]:
    n = n or (300 if quick else 2000)
    n -= n % concurrency
    rounds = 1 if quick else rounds
    with simulator(no_record=True) as sim:
        spent = sorted(asyncio.run(_calls(sim.base_url, n, concurrency, rounds)))
    per_call = [[round(value / n * 1e6, 1) for value in round_] for round_ in spent]
    # The least of the rounds: a busy neighbour only ever adds CPU time (caches, frequency).
    # user and system apart: the kernel's share (socket writes and reads, epoll) is not the
    # Python's above it.
    return {
        "bench": "llm_call",
        "calls": n,
        "concurrency": concurrency,
        "rounds_cpu_us_per_call": [cpu for cpu, _, _ in per_call],
        "cpu_us_per_call": per_call[0][0],
        "user_us_per_call": per_call[0][1],
        "system_us_per_call": per_call[0][2],
    }


def summary(result: dict[str, Any]) -> str:
    return (
        f"llm_call: {result['cpu_us_per_call']} µs of CPU per Agent call "
        f"({result['user_us_per_call']} user, {result['system_us_per_call']} system; "
        f"{result['calls']} calls, {result['concurrency']} at a time, simulator out of process)"
    )


if __name__ == "__main__":
    import json
    import sys

    result = run(n=int(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(summary(result), file=sys.stderr)
    print(json.dumps(result))
