"""(h) The fixed cost of a run: 100 leads through the template at a fixed 100 ms per call.

Run from the CLI (`manage.py run_workflow`) on PostgreSQL, as a user would. Ideally C
workers take N·2L/C for the loop plus 2L for the summary and the Slack post; the CLI's
`wall_seconds` (run created → run stored as ended) should be within 10 % of that. The two
ends are measured on their own (issue 6's acceptance: ≤ 100 ms each):

- request → first upstream call: the run's row created → the simulator receives its first
  call of the run;
- last item → final status: the last item's end → the final status readable in the database,
  minus the time the summary and the Slack post spent at the simulator (the 2L the ideal
  already counts).

A warm-up run comes first (the owner's data is provisioned on their first run).

For scale, the same calls in a bare asyncio + aiohttp loop (`_bare`: per lead both lookups at
once, then both LLM calls at once, ten leads at a time, then the summary and the Slack post;
no engine, no store, no database step) against the same simulator: what the simulator and
the machine cost before Klyntos adds anything (`bare_vs_ideal`), and Klyntos over that
(`wall_vs_bare`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp

from bench.cli_runs import klyntos_env, migrate, run_template
from bench.databases import fresh_databases
from bench.harness import BenchError, make_leads, simulator

LATENCY_MS = 100
CONCURRENCY = 10  # the template's max_concurrent
ROUNDS = 3
TARGETS = {"wall_vs_ideal": 1.10, "head_ms": 100.0, "tail_ms": 100.0}


def _measure(env: dict[str, str], sim: Any, n: int) -> dict[str, Any]:
    sim.control.reset(latency_ms=LATENCY_MS)
    cli = run_template(env, make_leads(n))
    row = cli.row
    received = sim.control.stats()["received"]
    if cli.summary["status"] != "succeeded" or row["item_rows"] != n:
        raise BenchError(f"run {cli.summary} with {row['item_rows']} item rows, expected {n}")
    if cli.final_visible_at is None or row["last_item_at"] is None:
        raise BenchError("the run's end or its last item was never seen")
    first_call = min(r["started"] for r in received)
    summary_call = next(r for r in received if "Summarize" in (r.get("prompt") or ""))
    slack_call = next(r for r in received if r["endpoint"] == "slack")
    final_calls = sum(c["finished"] - c["started"] for c in (summary_call, slack_call))
    latency = LATENCY_MS / 1000
    ideal = n * 2 * latency / CONCURRENCY + 2 * latency
    wall = float(cli.summary["wall_seconds"])
    tail_raw = cli.final_visible_at - row["last_item_at"]
    return {
        "wall_s": wall,
        "ideal_s": ideal,
        "wall_vs_ideal": wall / ideal,
        # The same span seen from outside the process: the run's row created → its final
        # status readable in the database (the CLI's own clock is not trusted alone).
        "visible_vs_ideal": (cli.final_visible_at - row["created_at"]) / ideal,
        "head_ms": (first_call - row["created_at"]) * 1000,
        "tail_ms": (tail_raw - final_calls) * 1000,
        "tail_raw_ms": tail_raw * 1000,
        # Where the tail goes: last item → summary call, Slack answer → status readable.
        "item_to_summary_ms": (summary_call["started"] - row["last_item_at"]) * 1000,
        "slack_to_final_ms": (cli.final_visible_at - slack_call["finished"]) * 1000,
        "calls": len(received),
    }


async def _bare(base_url: str, leads: list[dict[str, Any]]) -> float:
    """The template's calls in a bare loop (module docstring); its wall seconds."""
    llm = {"Authorization": "Bearer sk-bench"}
    lookups = {"Authorization": "Bearer bench"}

    def chat(prompt: str) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}

    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, **options: Any) -> None:
            async with session.request(method, base_url + path, **options) as response:
                await response.read()
                if response.status >= 400:
                    raise BenchError(f"bare {method} {path}: {response.status}")

        window = asyncio.Semaphore(CONCURRENCY)

        async def lead(one: dict[str, Any]) -> None:
            async with window:
                await asyncio.gather(
                    call("GET", f"/v2/companies/find?domain={one['domain']}", headers=lookups),
                    call("GET", f"/v2/people?email={one['email']}", headers=lookups),
                )
                await asyncio.gather(
                    call("POST", "/v1/chat/completions", json=chat(f"Analyze {one}"), headers=llm),
                    call("POST", "/v1/chat/completions", json=chat(f"Merge {one}"), headers=llm),
                )

        started = time.perf_counter()
        await asyncio.gather(*(lead(one) for one in leads))
        await call("POST", "/v1/chat/completions", json=chat("Summarize"), headers=llm)
        slack = {"Authorization": "Bearer xoxb-bench"}
        await call(
            "POST", "/api/chat.postMessage", json={"channel": "#b", "text": "x"}, headers=slack
        )
        return time.perf_counter() - started


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 20 if quick else 100
    rounds = 1 if quick else ROUNDS
    with simulator(latency_ms=LATENCY_MS) as sim, fresh_databases("h") as databases:
        env = klyntos_env(databases, sim.base_url)
        migrate(env)
        run_template(env, make_leads(10, prefix="warm"))  # provisions the owner's data
        measured = [_measure(env, sim, n) for _ in range(rounds)]
        bare = []
        for _ in range(rounds):
            sim.control.reset(latency_ms=LATENCY_MS)
            bare.append(asyncio.run(_bare(sim.base_url, make_leads(n))))
    expected_calls = 4 * n + 2
    if any(m["calls"] != expected_calls for m in measured):
        raise BenchError(
            f"calls per run {[m['calls'] for m in measured]}, expected {expected_calls}"
        )

    def median(key: str) -> float:
        return round(statistics.median(m[key] for m in measured), 3)

    result: dict[str, Any] = {
        "bench": "fixed_cost",
        "n": n,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "data": "postgresql",
        "ideal_s": round(measured[0]["ideal_s"], 3),
        "wall_s": median("wall_s"),
        "wall_vs_ideal": median("wall_vs_ideal"),
        "visible_vs_ideal": median("visible_vs_ideal"),
        "head_ms": median("head_ms"),
        "tail_ms": median("tail_ms"),
        "tail_raw_ms": median("tail_raw_ms"),
        "item_to_summary_ms": median("item_to_summary_ms"),
        "slack_to_final_ms": median("slack_to_final_ms"),
        "wall_s_all": [round(m["wall_s"], 3) for m in measured],
        "bare_s": round(statistics.median(bare), 3),
        "bare_vs_ideal": round(statistics.median(bare) / measured[0]["ideal_s"], 3),
        "wall_vs_bare": round(median("wall_s") / statistics.median(bare), 3),
        "head_ms_all": [round(m["head_ms"], 1) for m in measured],
        "tail_ms_all": [round(m["tail_ms"], 1) for m in measured],
        "targets": TARGETS,
    }
    result["pass"] = (
        result["wall_vs_ideal"] <= TARGETS["wall_vs_ideal"]
        and result["head_ms"] <= TARGETS["head_ms"]
        and result["tail_ms"] <= TARGETS["tail_ms"]
    )
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"fixed_cost: n={result['n']} at {result['latency_ms']} ms, CLI wall "
        f"{result['wall_s']:.2f}s vs ideal {result['ideal_s']:.2f}s → "
        f"{result['wall_vs_ideal']:.3f} (≤{TARGETS['wall_vs_ideal']}), request → first call "
        f"{result['head_ms']:.0f} ms, last item → final status {result['tail_ms']:.0f} ms "
        f"(≤100 each; medians of {result['rounds']}) {'PASS' if result['pass'] else 'FAIL'}; "
        f"the same calls in a bare asyncio loop {result['bare_s']:.2f}s "
        f"({result['bare_vs_ideal']:.3f} of ideal): Klyntos {result['wall_vs_bare']:.3f}× that"
    )
