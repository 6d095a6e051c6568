"""(a) Fixed latency: the lead template, sequential vs parallel, every call 200 ms.

An item's critical path is two calls (analysis ∥ lookups, then merge) plus a local insert,
so C workers ideally finish N items in N·2L/C. Anything above that is engine overhead
(or the machine being busy: compare with the other benchmarks before blaming the engine).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.harness import (
    create_enriched_leads,
    make_leads,
    run_template,
    simulator,
)
from engine.core.executor import RunOptions

LATENCY_MS = 200
CONCURRENCY = 10
WARMUP_ITEMS = 10
TARGETS = {"speedup": 9.0, "efficiency": 0.95}


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 20 if quick else 100
    leads = make_leads(n)
    latency = LATENCY_MS / 1000
    with (
        tempfile.TemporaryDirectory(prefix="klyntos-bench-") as tmp,
        simulator(latency_ms=LATENCY_MS, no_record=True) as sim,
    ):
        db = str(Path(tmp) / "data.sqlite3")
        create_enriched_leads(db)
        # Pays the one-off costs (lazy imports in openai/httpx, first connections) outside
        # the measured runs, so neither mode is charged for them.
        run_template(sim.base_url, db, make_leads(WARMUP_ITEMS, prefix="warm"), RunOptions())
        sim.control.reset()
        sequential_s = run_template(sim.base_url, db, leads, RunOptions(sequential=True))
        sim.control.reset()
        parallel_s = run_template(sim.base_url, db, leads, RunOptions(max_concurrent=CONCURRENCY))
        peak = sim.control.stats()["peak_in_flight_total"]

    ideal_parallel_s = n * 2 * latency / CONCURRENCY
    speedup = sequential_s / parallel_s
    efficiency = ideal_parallel_s / parallel_s
    return {
        "bench": "fixed_latency",
        "n": n,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "sequential_s": round(sequential_s, 3),
        "parallel_s": round(parallel_s, 3),
        "speedup": round(speedup, 3),
        "ideal_sequential_s": round(n * 2 * latency, 3),
        "ideal_parallel_s": round(ideal_parallel_s, 3),
        "efficiency": round(efficiency, 4),
        # Wall time above the ideal, spread over each worker's items: the per-item overhead.
        "overhead_per_item_ms": round((parallel_s - ideal_parallel_s) * CONCURRENCY / n * 1000, 2),
        "sequential_overhead_per_item_ms": round((sequential_s / n - 2 * latency) * 1000, 2),
        "peak_in_flight": peak,
        "data": "sqlite",
        "targets": TARGETS,
        "pass": speedup >= TARGETS["speedup"] and efficiency >= TARGETS["efficiency"],
    }


def summary(result: dict[str, Any]) -> str:
    return (
        f"fixed_latency: n={result['n']} sequential {result['sequential_s']:.2f}s, "
        f"parallel {result['parallel_s']:.2f}s (ideal {result['ideal_parallel_s']:.2f}s) → "
        f"speedup {result['speedup']:.2f}× (≥{TARGETS['speedup']}), efficiency "
        f"{result['efficiency']:.4f} (≥{TARGETS['efficiency']}) "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )
