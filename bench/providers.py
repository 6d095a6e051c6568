"""(p) Provider governance: AIMD against a provider that refuses past 6 in flight, a token
budget shared by two runs, and the breaker through an outage (engine/core/providers.py,
issue 9).

- `aimd_capped`: cap 20 on the host (AIMD starts at 10), a loop of 20 in flight, the
  simulator answering 429 whenever more than 6 calls are in flight (30 ms answers).
  `time_to_settle_s` runs from the first call to the last cut of the limit (after it the
  limit never passes 6); `calls_wasted` is every 429 the simulator answered;
  `after_settle_429_pct` the share of calls answered 429 after settling (target < 5 %);
  `efficiency` the items/s reached over the ideal 6 in flight / latency.
- `aimd_uncapped`: the same with no cap configured: the host's first 429 gives it a limit.
- `tokens`: two runs of Agent calls on one endpoint with a budget of 20,000 tokens per 2 s
  window (the minute shortened, KLYNTOS_PROVIDER_WINDOW_SECONDS), the simulator enforcing
  the same budget: 429s (target 0) and the most tokens it saw in one window over the budget
  (target between 0.9 and 1.0).
- `breaker`: 300 leads, 10 in flight, Clearbit answering 500 to 30 % of calls during an
  outage (time scaled down: 2 s instead of 20 s, a first cool-down of 0.25 s instead of
  5 s, breaker over the last 20 calls, at least 10, opening at 20 % failed).
  `time_to_trip_s` runs from the outage's first 500 to the breaker opening;
  `time_to_settle_s` from that opening to its last close (by probes), through the trips
  between; `closed_after_outage_s` from the outage's end to that close;
  `calls_wasted` counts the calls the provider failed (including failed probes),
  `calls_while_open` the calls that started while it was open (target 0), and
  `items_failed` the items that failed (target 0).
- `fair`: fair share between runs (issue 9 item 4): a 1,000-item run (50 items in flight
  asked for), then 2 s later a 10-item run, both on Clearbit capped at 10 (30 ms answers).
  Twice, interleaved with the big run alone. `small_ratio` is the small run's worse wall
  time over its solo time (the median of three solo runs; target <= 2); `big_loss_pct` the
  big run's throughput lost to the small run, from its mean wall time beside it over its
  mean wall time alone (target <= 10 %).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.harness import BENCH_ENV, LoopWindowSink, build_services, run_engine, simulator
from engine.core.events import Event
from engine.core.executor import RunOptions
from engine.core.provider_settings import BreakerPolicy, KeyLimits, ProviderSettings
from engine.core.providers import registry_for_loop
from engine.core.retry import RetryPolicy

LATENCY_MS = 30
REFUSE_PAST = 6
BUDGET = 20_000
WINDOW_S = 2.0
TARGETS = {"time_to_settle_s": 10.0, "after_settle_429_pct": 5.0}
FAIR_TARGETS = {"small_ratio": 2.0, "big_loss_pct": 10.0}
OUTAGE_S = 2.0
OUTAGE_RATE = 0.3
# A call granted just before the breaker opened reaches the simulator a moment later.
GRACE_S = 0.05
LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"


class Sink(LoopWindowSink):
    """Counts events like every bench's sink, and keeps the provider's limit changes."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: list[Event] = []
        self.breaker: list[Event] = []

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if event.type == "provider.limit":
            self.limits.append(event)
        elif event.type == "provider.breaker":
            self.breaker.append(event)


def loop_graph(concurrency: int, inner: dict[str, Any]) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "parent": None, "config": {}},
            {
                "id": "loop",
                "type": "loop",
                "name": "loop",
                "parent": None,
                "config": {"items": "<webhook.body.items>", "max_concurrent": concurrency},
            },
            {**inner, "parent": "loop"},
        ],
        "edges": [{"source": "webhook", "target": "loop"}],
    }


LOOKUP_BLOCK = {
    "id": "fetch",
    "type": "http",
    "name": "fetch",
    "config": {"url": LOOKUP, "headers": {"Authorization": "Bearer <env.CLEARBIT_API_KEY>"}},
}
AGENT_BLOCK = {
    "id": "ask",
    "type": "agent",
    "name": "ask",
    "config": {
        "model": "gpt-4o-mini",
        "system_prompt": "Rate this company for a sales team in one short paragraph.",
        "user_prompt": "Company: <item.domain>. Notes: <item.notes>",
    },
}


def aimd(base_url: str, control: Any, n: int, cap: int | None) -> dict[str, Any]:
    control.reset(
        latency_ms=LATENCY_MS, limits={"clearbit": {"max_in_flight": REFUSE_PAST}}, record=True
    )
    limits = {"api.clearbit.com": KeyLimits(concurrency=cap)} if cap else {}
    sink = Sink()
    options = RunOptions(retry=RetryPolicy(max_attempts=6, base_delay=0.05))
    items = {"items": [{"domain": f"d{i:05d}.example"} for i in range(n)]}

    async def main() -> float:
        registry_for_loop(ProviderSettings(limits=limits))
        began = time.time()
        await run_engine(
            loop_graph(20, LOOKUP_BLOCK),
            items,
            build_services(base_url),
            options,
            sink=sink,
            expected_items=n,
        )
        return time.time() - began

    wall = asyncio.run(main())
    stats = control.stats()
    calls = [r for r in stats["received"] if r["endpoint"] == "clearbit"]
    first = min(r["started"] for r in calls)
    cuts = [e for e in sink.limits if e.data["reason"] in ("429", "timeout")]
    settled_at = cuts[-1].at if cuts else first
    late = [r for r in calls if r["started"] > settled_at]
    late_refused = sum(1 for r in late if r["status"] == 429)
    after = [e.data["limit"] for e in sink.limits if e.at >= settled_at]
    ideal = REFUSE_PAST / (LATENCY_MS / 1000)
    return {
        "items": n,
        "wall_s": round(wall, 3),
        "time_to_settle_s": round(settled_at - first, 3),
        "settled_limit": after[-1] if after else None,
        "max_limit_after_settle": max(after) if after else None,
        "limit_path": [e.data["limit"] for e in sink.limits][:30],
        "calls": len(calls),
        "calls_wasted": stats["throttled"]["clearbit"],
        "after_settle_calls": len(late),
        "after_settle_429_pct": round(100 * late_refused / max(1, len(late)), 2),
        "items_per_s": round(n / wall, 1),
        "efficiency": round(n / wall / ideal, 3),
    }


def tokens(base_url: str, control: Any, n: int) -> dict[str, Any]:
    control.reset(
        latency_ms=20,
        limits={"openai": {"tokens_per_window": BUDGET, "window_s": WINDOW_S}},
        record=False,
    )
    items = {"items": [{"domain": f"x{i}.example", "notes": "word " * 120} for i in range(n)]}

    async def main() -> float:
        registry_for_loop(
            ProviderSettings(limits={"api.openai.com": KeyLimits(tpm=BUDGET)}, window=WINDOW_S)
        )
        began = time.time()
        await asyncio.gather(
            *(
                run_engine(
                    loop_graph(10, AGENT_BLOCK),
                    items,
                    build_services(base_url),
                    RunOptions(),
                    env=BENCH_ENV,
                    expected_items=n,
                )
                for _ in range(2)
            )
        )
        return time.time() - began

    wall = asyncio.run(main())
    stats = control.stats()
    peak = stats["peak_tokens_in_window"]["openai"]
    total = stats["tokens"]["openai"]
    return {
        "items_per_run": n,
        "wall_s": round(wall, 3),
        "budget_per_window": BUDGET,
        "window_s": WINDOW_S,
        "tokens": total,
        "tokens_429": stats["throttled"]["openai"],
        "peak_window_over_budget": round(peak / BUDGET, 3),
        "mean_rate_over_budget": round(total / wall * WINDOW_S / BUDGET, 3),
    }


def breaker(base_url: str, control: Any, n: int) -> dict[str, Any]:
    outage = {
        "endpoint": "clearbit",
        "status": 500,
        "rate": OUTAGE_RATE,
        "for_s": OUTAGE_S,
        "after": 30,
    }
    control.reset(latency_ms=20, seed=11, failures=[outage], record=True)
    policy = BreakerPolicy(
        window=20, min_calls=10, failure_rate=0.2, cool_down=0.25, cool_down_max=2.0, probes=3
    )
    sink = Sink()
    options = RunOptions(retry=RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1))
    items = {"items": [{"domain": f"b{i:05d}.example"} for i in range(n)]}

    async def main() -> float:
        registry_for_loop(ProviderSettings(breaker=policy))
        began = time.time()
        await run_engine(
            loop_graph(10, LOOKUP_BLOCK), items, build_services(base_url), options, sink=sink
        )
        return time.time() - began

    wall = asyncio.run(main())
    calls = [r for r in control.stats()["received"] if r["endpoint"] == "clearbit"]
    failed = sorted((r for r in calls if r["status"] == 500), key=lambda r: r["finished"])
    changes = sink.breaker
    opens = [e.at for e in changes if e.data["state"] == "open"]
    closes = [e.at for e in changes if e.data["state"] == "closed"]
    periods, opened = [], None
    for event in changes:
        if event.data["state"] == "open" and opened is None:
            opened = event.at
        elif event.data["state"] != "open" and opened is not None:
            periods.append((opened, event.at))
            opened = None
    while_open = sum(1 for r in calls for a, b in periods if a + GRACE_S < r["started"] < b)
    return {
        "items": n,
        "wall_s": round(wall, 3),
        "trips": len(opens),
        "time_to_trip_s": round(opens[0] - failed[0]["finished"], 3) if opens and failed else None,
        "time_to_settle_s": round(closes[-1] - opens[0], 3) if closes and opens else None,
        "closed_after_outage_s": (
            round(closes[-1] - (failed[0]["started"] + OUTAGE_S), 3) if closes and failed else None
        ),
        "open_s": round(sum(b - a for a, b in periods), 3),
        "calls": len(calls),
        "calls_wasted": len(failed),
        "calls_while_open": while_open,
        "items_failed": n - sink.by_type.get("item.finished", 0),
        "ended_closed": bool(changes) and changes[-1].data["state"] == "closed",
    }


def fair(base_url: str, control: Any, n: int, delay: float) -> dict[str, Any]:
    control.reset(latency_ms=LATENCY_MS, record=False)
    limits = {"api.clearbit.com": KeyLimits(concurrency=10, start=1.0)}

    def leads(name: str, count: int) -> dict[str, Any]:
        return {"items": [{"domain": f"{name}{i:05d}.example"} for i in range(count)]}

    async def timed(name: str, count: int, concurrency: int, wait: float = 0.0) -> float:
        await asyncio.sleep(wait)
        began = time.monotonic()
        await run_engine(
            loop_graph(concurrency, LOOKUP_BLOCK),
            leads(name, count),
            build_services(base_url),
            RunOptions(),
            expected_items=count,
        )
        return time.monotonic() - began

    async def main() -> tuple[list[float], list[float], list[float], list[float]]:
        registry_for_loop(ProviderSettings(limits=limits))
        solo = [await timed("s", 10, 10) for _ in range(3)]
        alone, beside, small = [], [], []
        for _ in range(2):  # interleaved: the machine's noise hits both alike
            alone.append(await timed("b", n, 50))
            big, late = await asyncio.gather(timed("b", n, 50), timed("s", 10, 10, delay))
            beside.append(big)
            small.append(late)
        return solo, alone, beside, small

    solo, alone, beside, small = asyncio.run(main())
    solo_s = sorted(solo)[1]
    big_alone, big = sum(alone) / len(alone), sum(beside) / len(beside)
    return {
        "big_items": n,
        "small_items": 10,
        "small_started_after_s": delay,
        "small_solo_s": round(solo_s, 3),
        "small_beside_big_s": [round(x, 3) for x in small],
        "small_ratio": round(max(small) / solo_s, 2),  # the worse of the two
        "big_alone_s": [round(x, 3) for x in alone],
        "big_beside_small_s": [round(x, 3) for x in beside],
        "big_items_per_s_alone": round(n / big_alone, 1),
        "big_items_per_s_beside": round(n / big, 1),
        "big_loss_pct": round(100 * max(0.0, 1 - big_alone / big), 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    n = 200 if quick else 1000
    with simulator(latency_ms=0) as sim:
        capped = aimd(sim.base_url, sim.control, n, cap=20)
        uncapped = aimd(sim.base_url, sim.control, n, cap=None)
        budget = tokens(sim.base_url, sim.control, 60 if quick else 150)
        outage = breaker(sim.base_url, sim.control, 300)
        shared = fair(sim.base_url, sim.control, 300 if quick else 1000, 1.0 if quick else 2.0)
    passed = (
        all(
            s["time_to_settle_s"] <= TARGETS["time_to_settle_s"]
            and s["after_settle_429_pct"] < TARGETS["after_settle_429_pct"]
            and (s["max_limit_after_settle"] or 0) <= REFUSE_PAST
            for s in (capped, uncapped)
        )
        and budget["tokens_429"] == 0
        and 0.9 <= budget["peak_window_over_budget"] <= 1.0
        and outage["trips"] > 0
        and outage["calls_while_open"] == 0
        and outage["items_failed"] == 0
        and outage["ended_closed"]
        and shared["small_ratio"] <= FAIR_TARGETS["small_ratio"]
        and shared["big_loss_pct"] <= FAIR_TARGETS["big_loss_pct"]
    )
    return {
        "bench": "providers",
        "aimd_capped": capped,
        "aimd_uncapped": uncapped,
        "tokens": budget,
        "breaker": outage,
        "fair": shared,
        "targets": {
            **FAIR_TARGETS,
            **TARGETS,
            "max_limit_after_settle": REFUSE_PAST,
            "tokens_429": 0,
            "peak_window_over_budget": [0.9, 1.0],
            "breaker_calls_while_open": 0,
            "breaker_items_failed": 0,
        },
        "pass": passed,
    }


def summary(result: dict[str, Any]) -> str:
    lines = ["providers:"]
    for name in ("aimd_capped", "aimd_uncapped"):
        s = result[name]
        lines.append(
            f"  {name}: time to settle {s['time_to_settle_s']} s (limit {s['settled_limit']}), "
            f"{s['calls_wasted']} calls wasted of {s['calls']} "
            f"({s['after_settle_429_pct']} % 429 after settling), "
            f"{s['items_per_s']} items/s = {s['efficiency']} of 6 in flight"
        )
    t = result["tokens"]
    lines.append(
        f"  tokens: {t['tokens_429']} 429s, busiest window {t['peak_window_over_budget']} of the "
        f"budget, mean rate {t['mean_rate_over_budget']} of it"
    )
    b = result["breaker"]
    lines.append(
        f"  breaker: trips in {b['time_to_trip_s']} s, settles (closed by probes) "
        f"{b['time_to_settle_s']} s later ({b['closed_after_outage_s']} s after the "
        f"{OUTAGE_S:g} s outage ended), {b['trips']} trips, "
        f"open {b['open_s']} s, {b['calls_wasted']} calls wasted of {b['calls']}, "
        f"{b['calls_while_open']} started while open, {b['items_failed']} items failed"
    )
    f = result["fair"]
    lines.append(
        f"  fair: a {f['small_items']}-item run {f['small_started_after_s']:g} s into a "
        f"{f['big_items']}-item run (cap 10): {max(f['small_beside_big_s'])} s vs "
        f"{f['small_solo_s']} s alone = {f['small_ratio']}x its solo time (target <= 2); "
        f"the big run {f['big_items_per_s_beside']} vs {f['big_items_per_s_alone']} items/s "
        f"alone = {f['big_loss_pct']} % lost (target <= 10 %)"
    )
    lines.append(f"  pass: {result['pass']}")
    return "\n".join(lines)
