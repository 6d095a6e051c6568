"""Provider governance end to end: runs on one loop share each provider's caps, rates and
adaptive limit, against the simulator's own rate limits (simulator `limits`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine.core.executor import RunOptions
from engine.core.provider_settings import KeyLimits, ProviderSettings
from engine.core.providers import registry_for_loop
from engine.core.retry import RetryPolicy
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"


def lookup_loop(max_concurrent: int) -> dict[str, Any]:
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=max_concurrent),
            block("fetch", "http", "loop", url=LOOKUP, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )


def agent_loop(max_concurrent: int) -> dict[str, Any]:
    return graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=max_concurrent),
            block(
                "ask",
                "agent",
                "loop",
                model="gpt-4o-mini",
                system_prompt="Rate this company for a sales team in one short paragraph.",
                user_prompt="Company: <item.domain>. Notes: <item.notes>",
            ),
        ],
        [("webhook", "loop")],
    )


def items(n: int, run: str = "a") -> dict[str, Any]:
    return {
        "items": [
            {"domain": f"{run}{i}.example", "notes": f"lead {i} of run {run} " * 3}
            for i in range(n)
        ]
    }


async def test_two_runs_share_a_provider_cap(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=20)
    registry_for_loop(ProviderSettings(limits={"api.clearbit.com": KeyLimits(concurrency=4)}))
    first, second = Recorder(), Recorder()
    (one, _), (two, _) = await asyncio.gather(
        run_graph(lookup_loop(10), items(60, "a"), sim=sim, recorder=first),
        run_graph(lookup_loop(10), items(60, "b"), sim=sim, recorder=second),
    )
    assert one.status == two.status == "succeeded"
    stats = sim.control.stats()
    assert stats["requests"]["clearbit"] == 120
    assert stats["peak_in_flight"]["clearbit"] == 4  # 20 asked for, 4 allowed, all used
    # Items that waited said so, naming the provider and why.
    waits = first.of("step.waiting") + second.of("step.waiting")
    assert len(waits) > 60
    assert {w.data["message"] for w in waits} == {"waiting for api.clearbit.com: concurrency"}
    assert len(first.of("step.waited")) == len(first.of("step.waiting"))
    # Both runs heard the adaptive limit as it grew from half the cap to the cap.
    for recorder in (first, second):
        limits = [e.data["limit"] for e in recorder.of("provider.limit")]
        assert limits[-1] == 4 and all(limit <= 4 for limit in limits)


async def test_aimd_settles_under_a_provider_that_refuses_past_six_in_flight(
    sim: RunningSimulator,
) -> None:
    """The simulator answers 429 whenever more than 6 calls are in flight: the limit
    settles at <= 6 within 10 s, no item fails, and 429s after settling are < 5 %."""
    sim.control.configure(latency_ms=30, limits={"clearbit": {"max_in_flight": 6}})
    registry_for_loop(ProviderSettings(limits={"api.clearbit.com": KeyLimits(concurrency=20)}))
    recorder = Recorder()
    options = RunOptions(retry=RetryPolicy(max_attempts=5, base_delay=0.05))
    outcome, _ = await run_graph(
        lookup_loop(20), items(400), sim=sim, recorder=recorder, options=options
    )
    assert outcome.status == "succeeded"
    assert outcome.failed_items == 0
    changes = recorder.of("provider.limit")
    began = changes[0].at  # the run's first call to the provider
    cuts = [e for e in changes if e.data["reason"] in ("429", "timeout")]
    assert cuts, "the simulator's limit was never met"
    settled_at = cuts[-1].at  # the last cut: from here on the limit only holds or grows
    assert settled_at - began <= 10.0
    assert all(e.data["limit"] <= 6 for e in changes if e.at >= settled_at)
    received = sim.control.stats()["received"]
    late = [r for r in received if r["endpoint"] == "clearbit" and r["started"] > settled_at]
    refused = sum(1 for r in late if r["status"] == 429)
    assert len(late) > 200
    assert refused / len(late) < 0.05


async def test_a_token_budget_shared_by_two_runs_is_never_passed(sim: RunningSimulator) -> None:
    """20,000 tokens per window on the LLM endpoint (the window shortened to 2 s), two runs:
    the simulator enforces the same budget, answers no 429, and sees <= the budget in any
    window while reaching >= 90 % of it."""
    budget, window = 20_000, 2.0
    sim.control.configure(
        latency_ms=20,
        limits={"openai": {"tokens_per_window": budget, "window_s": window}},
    )
    registry_for_loop(
        ProviderSettings(limits={"api.openai.com": KeyLimits(tpm=budget)}, window=window)
    )
    # Long prompts, few calls: a window's budget is ~30 calls, not ~130 a loaded machine's
    # CPU could not make within the window (it once reached 17,748 of the 18,000 below).
    big = {"items": [{"domain": f"x{i}.example", "notes": "word " * 600} for i in range(40)]}
    (one, _), (two, _) = await asyncio.gather(
        run_graph(agent_loop(10), big, sim=sim),
        run_graph(agent_loop(10), big, sim=sim),
    )
    assert one.status == two.status == "succeeded"
    stats = sim.control.stats()
    assert stats["throttled"]["openai"] == 0
    assert stats["requests"]["openai"] == 80
    assert stats["tokens"]["openai"] > 2 * budget  # enough demand to need the budget
    assert budget * 0.9 <= stats["peak_tokens_in_window"]["openai"] <= budget


async def test_nested_loops_under_a_cap_of_one_never_deadlock(sim: RunningSimulator) -> None:
    """A provider slot is held only around one call, never while a loop slot is awaited:
    an outer loop of 4 items, each an inner loop of 4 calls to one host capped at 1."""
    registry_for_loop(
        ProviderSettings(limits={"api.clearbit.com": KeyLimits(concurrency=1, start=1.0)})
    )
    g = graph(
        [
            block("webhook", "webhook"),
            block(
                "outer", "loop", items="<webhook.body.groups>", variable="group", max_concurrent=4
            ),
            block("inner", "loop", "outer", items="<group.items>", max_concurrent=4),
            block(
                "fetch",
                "http",
                "inner",
                url=LOOKUP,
                headers={"Authorization": "Bearer k"},
            ),
        ],
        [("webhook", "outer")],
    )
    body = {"groups": [items(4, f"g{g}") for g in range(4)]}
    outcome, _ = await asyncio.wait_for(run_graph(g, body, sim=sim), 30)
    assert outcome.status == "succeeded"
    stats = sim.control.stats()
    assert stats["requests"]["clearbit"] == 16
    assert stats["peak_in_flight"]["clearbit"] == 1


async def test_slack_posts_go_through_the_slack_hosts_cap(sim: RunningSimulator) -> None:
    sim.control.configure(latency_ms=30)
    registry_for_loop(ProviderSettings(limits={"slack.com": KeyLimits(concurrency=1, start=1.0)}))
    g = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=5),
            block("post", "slack", "loop", channel="#sales", text="hello <item.domain>"),
        ],
        [("webhook", "loop")],
    )
    recorder = Recorder()
    outcome, _ = await run_graph(g, items(5), sim=sim, recorder=recorder)
    assert outcome.status == "succeeded"
    stats = sim.control.stats()
    assert (stats["requests"]["slack"], stats["peak_in_flight"]["slack"]) == (5, 1)
    assert {e.data["message"] for e in recorder.of("step.waiting")} == {
        "waiting for slack.com: concurrency"
    }


async def test_a_small_run_beside_a_big_one_does_not_queue_behind_its_backlog(
    sim: RunningSimulator,
) -> None:
    """Issue 9 item 4, scaled down: a 400-item run (50 in flight asked for), then 1 s later a
    10-item run on the same provider capped at 10: the small run's calls do not queue behind
    the big run's backlog. Checked by the order the simulator saw the calls in, not by the
    clock: fair share gives the small run half the cap, so its wall time sits at 2x its solo
    time by construction, and a timed bound that tight fails on a busy machine. The ratio is
    measured by bench/providers.py `fair` (target <= 2) at full scale."""
    sim.control.reset(latency_ms=50, record=True)
    registry_for_loop(
        ProviderSettings(limits={"api.clearbit.com": KeyLimits(concurrency=10, start=1.0)})
    )
    timings: dict[str, float] = {}
    small_run = Recorder()

    async def timed(name: str, n: int, concurrency: int, wait: float = 0.0) -> None:
        await asyncio.sleep(wait)
        began = time.monotonic()
        recorder = small_run if name == "s" else None
        outcome, _ = await run_graph(
            lookup_loop(concurrency), items(n, name), sim=sim, recorder=recorder
        )
        timings[name] = time.monotonic() - began
        assert outcome.status == "succeeded"

    await asyncio.gather(timed("b", 400, 50), timed("s", 10, 10, 1.0))
    # Structurally: once the small run's first step asked for a call, at most about one cap's
    # worth of the big run's calls started before the small run's last one (first come first
    # served: its backlog, ~40 calls, would all have gone first). From its first step, not
    # from when the test started it: on a loaded machine the run's own setup took long
    # enough for 18 of the big run's calls to go meanwhile, with no queue to jump yet.
    asked = min(e.at for e in small_run.of("step.started", block="fetch"))
    calls = [r for r in sim.control.stats()["received"] if r["endpoint"] == "clearbit"]
    small = [r for r in calls if r["raw_query"].startswith("domain=s")]
    assert len(small) == 10
    last = max(r["start_seq"] for r in small)
    ahead = [
        r
        for r in calls
        if r["raw_query"].startswith("domain=b") and r["started"] >= asked and r["start_seq"] < last
    ]
    assert len(ahead) <= 10, len(ahead)
    assert timings["b"] > timings["s"] + 0.5  # the big run was still running throughout


async def test_a_runs_calls_keep_its_loops_item_priority_beside_another_run(
    sim: RunningSimulator,
) -> None:
    """Fair share picks which run goes next; within a run, calls go in the order its loop
    started its items, so the loop's `priority` holds on the shared provider."""
    sim.control.reset(latency_ms=20, record=True)
    registry_for_loop(
        ProviderSettings(limits={"api.clearbit.com": KeyLimits(concurrency=2, start=1.0)})
    )
    ranked = graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                max_concurrent=20,
                priority="rank",
            ),
            block("fetch", "http", "loop", url=LOOKUP, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )
    body = {"items": [{"domain": f"p{i}.example", "rank": i % 7} for i in range(20)]}
    (one, _), (two, _) = await asyncio.gather(
        run_graph(ranked, body, sim=sim), run_graph(lookup_loop(20), items(20, "o"), sim=sim)
    )
    assert one.status == two.status == "succeeded"
    calls = sorted(sim.control.stats()["received"], key=lambda r: r["start_seq"])
    ranks = [
        int(r["raw_query"][len("domain=p") :].split(".")[0]) % 7
        for r in calls
        if r["raw_query"].startswith("domain=p")
    ]
    assert len(ranks) == 20
    assert ranks == sorted(ranks, reverse=True)
    # And the two runs shared the cap: the ranked run was not served last.
    owners = ["p" if r["raw_query"].startswith("domain=p") else "o" for r in calls]
    assert "p" in owners[:6] and "o" in owners[:6]
