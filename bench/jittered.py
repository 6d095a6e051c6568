"""(b) Jittered latency: how close the sliding window gets to the schedule it could have had.

Latency is uniform 20–380 ms per call. From what the simulator actually served we rebuild
each item's critical path — max(analysis, clearbit, linkedin) + merge — and replay a greedy
C-slot schedule in input order (each next item starts on the earliest free slot). That
makespan is the best any engine could do with those exact latencies; efficiency is it over
the measured loop wall.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.harness import (
    BenchError,
    create_enriched_leads,
    make_leads,
    run_template,
    simulator,
    template_block,
    template_graph,
)
from engine.core.executor import RunOptions

JITTER_MS = (20, 380)
SEED = 20240601
CONCURRENCY = 10
WARMUP_ITEMS = 10
TARGET = 0.95


def _system_prompt(graph: Mapping[str, Any], name: str) -> str:
    return str(template_block(graph, name)["config"]["system_prompt"])


def critical_paths(
    leads: Sequence[Mapping[str, Any]],
    received: Iterable[Mapping[str, Any]],
    graph: Mapping[str, Any],
) -> list[float]:
    """Each lead's served critical path in seconds, in input order.

    OpenAI calls are told apart by the template's system prompts (so the summary after the
    loop is excluded) and matched to a lead by its email (analysis: `Email: <email>`) or its
    email/domain inside the merge prompt (which embeds the Clearbit and LinkedIn JSON).
    """
    analysis_marker = _system_prompt(graph, "agent_analysis")
    merge_marker = _system_prompt(graph, "agent_merge")
    by_email = {lead["email"]: i for i, lead in enumerate(leads)}
    by_domain = {lead["domain"]: i for i, lead in enumerate(leads)}
    by_email_line = {f"Email: {lead['email']}\n": i for i, lead in enumerate(leads)}
    calls: list[dict[str, float]] = [{} for _ in leads]

    def put(index: int | None, kind: str, entry: Mapping[str, Any]) -> None:
        if index is None:
            return
        if kind in calls[index]:
            raise BenchError(f"lead {index} has two {kind} calls (a retry?)")
        calls[index][kind] = float(entry["latency_ms"]) / 1000

    def in_prompt(prompt: str, keys: Mapping[str, int]) -> int | None:
        found = {index for key, index in keys.items() if key in prompt}
        if len(found) > 1:
            raise BenchError("an openai prompt names more than one lead")
        return found.pop() if found else None

    for entry in received:
        endpoint, query = entry["endpoint"], entry.get("query") or {}
        if endpoint == "clearbit":
            put(by_domain.get(query.get("domain", "")), "clearbit", entry)
        elif endpoint == "linkedin":
            put(by_email.get(query.get("email", "")), "linkedin", entry)
        elif endpoint == "openai":
            prompt = entry.get("prompt") or ""
            if analysis_marker in prompt:
                put(in_prompt(prompt, by_email_line), "analysis", entry)
            elif merge_marker in prompt:
                index = in_prompt(prompt, by_email)
                put(index if index is not None else in_prompt(prompt, by_domain), "merge", entry)
    paths = []
    for index, found in enumerate(calls):
        missing = {"analysis", "clearbit", "linkedin", "merge"} - set(found)
        if missing:
            raise BenchError(f"lead {index}: no {', '.join(sorted(missing))} call recorded")
        paths.append(max(found["analysis"], found["clearbit"], found["linkedin"]) + found["merge"])
    return paths


def greedy_makespan(durations: Iterable[float], slots: int) -> float:
    """Items in order, each on the earliest free of `slots` slots: the ideal sliding window."""
    free = [0.0] * slots
    end = 0.0
    for duration in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration)
        end = max(end, start + duration)
    return end


def _run(base_url: str, db: str, leads: list[dict[str, Any]]) -> float:
    return run_template(base_url, db, leads, RunOptions(max_concurrent=CONCURRENCY))


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 30 if quick else 100
    leads = make_leads(n)
    with (
        tempfile.TemporaryDirectory(prefix="klyntos-bench-") as tmp,
        simulator(jitter_ms=JITTER_MS, seed=SEED) as sim,
    ):
        db = str(Path(tmp) / "data.sqlite3")
        create_enriched_leads(db)
        _run(sim.base_url, db, make_leads(WARMUP_ITEMS, prefix="warm"))
        sim.control.reset()  # clears the warm-up's records and re-seeds the jitter
        measured_s = _run(sim.base_url, db, leads)
        stats = sim.control.stats()

    paths = critical_paths(leads, stats["received"], template_graph())
    ideal_s = greedy_makespan(paths, CONCURRENCY)
    efficiency = ideal_s / measured_s
    return {
        "bench": "jittered_latency",
        "n": n,
        "jitter_ms": list(JITTER_MS),
        "seed": SEED,
        "concurrency": CONCURRENCY,
        "mean_critical_path_ms": round(sum(paths) / n * 1000, 1),
        "ideal_s": round(ideal_s, 3),
        "measured_s": round(measured_s, 3),
        "efficiency": round(efficiency, 4),
        "overhead_per_item_ms": round((measured_s - ideal_s) * CONCURRENCY / n * 1000, 2),
        "peak_in_flight": stats["peak_in_flight_total"],
        "data": "sqlite",
        "target": TARGET,
        "pass": efficiency >= TARGET,
    }


def summary(result: dict[str, Any]) -> str:
    return (
        f"jittered_latency: n={result['n']} measured {result['measured_s']:.2f}s vs ideal "
        f"{result['ideal_s']:.2f}s → efficiency {result['efficiency']:.4f} (≥{TARGET}) "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )
