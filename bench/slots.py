"""(s) Caps held across workers: database statements per loop item for its slot (take and
give back, engine/slots.py), and what holding one costs an item.

On a fresh PostgreSQL database (migrated), a loop of N items that do no I/O (a transform,
so the slot is all the item waits for) runs with the loop's cap 10:
- inline: no slot (the loop's window is the cap);
- one holder: every item holds a slot of the run's loop key (`ClusterSlots`, its own pool);
- two holders: two executions of the same run's loop (a chunked loop's two workers), each
  with its own pool and listener, contend for the same 10 slots.
Statements are counted by the holders (takes, including the tries of waiting holders, and
give-backs; heartbeats apart). Target without contention: a take per slot in flight, not
per item (a holder keeps the slots it took for its next items, engine/slots.py): at most
2·cap statements for the loop plus the tries of its first `cap` items, so ≤ 0.05 per item
at n = 2,000. Two holders contending give back as holds end (a take and a give-back per
item, plus the waiters' tries).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from bench.databases import fresh_databases
from bench.harness import REPO, BenchError

CAP = 10


def loop_graph() -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "loop",
                "type": "loop",
                "name": "loop",
                "config": {"items": "<webhook.body.items>", "max_concurrent": CAP},
            },
            {
                "id": "shape",
                "type": "transform",
                "name": "shape",
                "parent": "loop",
                "config": {"expression": "{id: id, twice: [id, id]}", "input": "<item>"},
            },
        ],
        "edges": [{"source": "webhook", "target": "loop"}],
    }


async def _execute(slots: Any, items: list[dict[str, Any]], run_id: str) -> float:
    from engine.blocks import REGISTRY
    from engine.core.events import EventBus
    from engine.core.executor import Executor
    from engine.core.graph import parse_graph
    from engine.core.outbound import OutboundConfig, OutboundFactory
    from engine.core.services import Services

    services = Services(
        outbound=OutboundFactory(OutboundConfig()), slots=slots, run_id=run_id if slots else ""
    )
    engine = Executor(
        parse_graph(loop_graph()), REGISTRY, bus=EventBus(lambda _: None), services=services
    )
    started = time.perf_counter()
    try:
        outcome = await engine.run({"items": items})
    finally:
        await services.aclose()
    if outcome.status != "succeeded":
        raise BenchError(f"the loop {outcome.status}: {outcome.error}")
    return time.perf_counter() - started


async def _measure(conninfo: str, n: int) -> dict[str, Any]:
    from engine.slots import ClusterSlots

    items = [{"id": i} for i in range(n)]
    await _execute(None, items[:50], "warm")  # imports, first compilations
    inline_s = await _execute(None, items, "")

    one = ClusterSlots(conninfo)
    try:
        await _execute(one, items[:50], "warm-one")
        before = one.stats.takes + one.stats.gives
        one_s = await _execute(one, items, "one")
    finally:
        await one.aclose()  # gives back the slots it kept (counted)
    one_statements = one.stats.takes + one.stats.gives - before

    pair = [ClusterSlots(conninfo), ClusterSlots(conninfo)]
    try:
        halves = [items[: n // 2], items[n // 2 :]]
        started = time.perf_counter()
        await asyncio.gather(
            *(_execute(s, half, "two") for s, half in zip(pair, halves, strict=True))
        )
        two_s = time.perf_counter() - started
        two_statements = sum(s.stats.takes + s.stats.gives for s in pair)
        waits = sum(s.stats.waits for s in pair)
    finally:
        for s in pair:
            await s.aclose()
    return {
        "bench": "slots",
        "n": n,
        "cap": CAP,
        "inline_items_per_s": round(n / inline_s, 1),
        "one_holder_items_per_s": round(n / one_s, 1),
        "two_holders_items_per_s": round(n / two_s, 1),
        "statements_per_item_one_holder": round(one_statements / n, 3),
        "statements_per_item_two_holders": round(two_statements / n, 3),
        "waits_two_holders": waits,
        "reused_one_holder": one.stats.reused,
        # A take per slot, the misses of the first window's items, and the give-backs of
        # the slots kept: independent of n.
        "target_statements_per_item": round(4 * CAP / n, 3),
        "pass": one_statements <= 4 * CAP,
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 200 if quick else 2000
    with fresh_databases("s") as databases:
        env = {**os.environ, **databases, "DJANGO_SETTINGS_MODULE": "klyntos.settings"}
        subprocess.run(  # noqa: S603 -- our own manage.py
            [sys.executable, "manage.py", "migrate", "engine", "--verbosity", "0"],
            cwd=REPO,
            env=env,
            check=True,
        )
        from psycopg.conninfo import make_conninfo

        return asyncio.run(_measure(make_conninfo(databases["DATABASE_URL"]), n))


def summary(result: dict[str, Any]) -> str:
    return (
        f"(s) slots: {result['statements_per_item_one_holder']} statements per item with one"
        f" holder (target <= {result['target_statements_per_item']}),"
        f" {result['statements_per_item_two_holders']} with two contending for cap"
        f" {result['cap']}; items/s inline {result['inline_items_per_s']}, one holder"
        f" {result['one_holder_items_per_s']}, two holders {result['two_holders_items_per_s']}"
        f" (n={result['n']})"
    )
