"""(g) The stored path at 100,000 items: memory and throughput with every row written.

A loop of N items, one GET each to a zero-latency server (the simulator's Clearbit route, in
its own process), run by `engine.runner.execute_run` exactly as the CLI runs it: the run
store writes every item and step row to PostgreSQL. In the same process and against
the same server, a bare asyncio + aiohttp loop with the same concurrency does the same GETs.
The two take turns, three runs each (bare, stored, bare, stored, ...): the ratio is the
median stored run's rate over the median bare run's. One stored run on this shared machine
moved by ±10 % from one to the next (0.29–0.35 with the same code), as one floor did by ±7 %;
every run's rate is printed.

The run happens in a worker process of its own (`python -m bench.stored_loop`), on fresh
databases, so its RSS is the run's: growth is its peak over the idle process (Django set
up, migrations done, one warm-up run made), the highest of the stored runs'. Targets
(issue 6): growth ≤ 300 MB and items/s ≥ 0.35× the bare loop's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.databases import fresh_databases
from bench.harness import (
    BENCH_HOST,
    REPO,
    BenchError,
    LoopWindowSink,
    RssSampler,
    one_get_loop_graph,
    simulator,
)

CONCURRENCY = 50  # as (c), so the two ratios compare
PATH = "/v2/companies/find"
WARMUP_ITEMS = 500
ROUNDS = 3  # stored runs and bare runs, taking turns: the median of each counts
TARGETS = {"ratio": 0.35, "rss_growth_mb": 300.0}
WORKER_TIMEOUT = 1800.0


def stored_graph() -> dict[str, Any]:
    """webhook → loop(parallel, 50) { one GET }, as the editor would save it."""
    return one_get_loop_graph(
        CONCURRENCY, f"https://{BENCH_HOST}{PATH}?domain=<item.domain>", "Bearer bench-stored"
    )


def _stored_run(workflow: Any, items: list[dict[str, str]]) -> tuple[Any, float, float]:
    """One run through `execute_run`; (the run, the loop's seconds, the whole run's)."""
    from builder import services
    from engine.runner import execute_run

    run, _ = services.run_create(workflow=workflow, input={"items": items}, trigger="cli")
    sink = LoopWindowSink()
    started = time.perf_counter()
    asyncio.run(execute_run(run.pk, on_event=sink))
    whole = time.perf_counter() - started
    run.refresh_from_db()
    if run.status != "succeeded":
        raise BenchError(f"run {run.status}: {run.error}")
    return run, sink.wall, whole


def worker(n: int) -> dict[str, Any]:
    """In the worker process: set up Django, warm up, then the measured run and the floor."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "klyntos.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from bench.overhead import bare_aiohttp, make_items
    from builder import services
    from engine.models import ItemRun, StepRun

    call_command("migrate", interactive=False, verbosity=0)
    call_command("migrate", database="data", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user("bench")
    workflow = services.workflow_create(owner=user, name="stored loop", graph=stored_graph())
    items = make_items(n)
    base_url = os.environ["BENCH_SIMULATOR_URL"]
    # One-off costs (imports, the owner's data provisioning, first connections) first.
    _stored_run(workflow, make_items(WARMUP_ITEMS))
    asyncio.run(bare_aiohttp(base_url, make_items(WARMUP_ITEMS)))
    # Taking turns, so that a slow spell of a shared machine weighs on both sides alike.
    bare: list[float] = []
    stored: list[dict[str, Any]] = []
    for _ in range(ROUNDS):
        bare.append(asyncio.run(bare_aiohttp(base_url, items)))
        gc.collect()
        with RssSampler() as rss:
            run, loop_s, run_s = _stored_run(workflow, items)
        stored.append(
            {
                "loop_s": loop_s,
                "run_s": run_s,
                "rss_idle": rss.baseline,
                "rss_peak": rss.peak,
                "item_rows": ItemRun.objects.filter(run=run).count(),
                "step_rows": StepRun.objects.filter(run=run).count(),
            }
        )
    median = sorted(stored, key=lambda r: r["loop_s"])[len(stored) // 2]
    return {
        "loop_s": median["loop_s"],
        "run_s": median["run_s"],
        "stored_runs_s": [r["loop_s"] for r in stored],
        "bare_s": sorted(bare)[len(bare) // 2],
        "bare_runs_s": bare,
        "rss_growth": max(r["rss_peak"] - r["rss_idle"] for r in stored),
        "rss_idle": min(r["rss_idle"] for r in stored),
        "rss_peak": max(r["rss_peak"] for r in stored),
        "item_rows": [r["item_rows"] for r in stored],
        "step_rows": [r["step_rows"] for r in stored],
    }


def run(*, quick: bool = False, n: int | None = None) -> dict[str, Any]:
    n = n or (2_000 if quick else 100_000)
    with simulator(latency_ms=0, no_record=True) as sim, fresh_databases("g") as databases:
        env = {
            **os.environ,
            **databases,
            "DJANGO_SETTINGS_MODULE": "klyntos.settings",
            "KLYNTOS_HOST_OVERRIDES": f"{BENCH_HOST}={sim.base_url}",
            "BENCH_SIMULATOR_URL": sim.base_url,
        }
        env.pop("REDIS_URL", None)  # no socket watches: the in-memory layer drops deltas
        done = subprocess.run(  # noqa: S603 -- our own module, fixed argv
            [sys.executable, "-m", "bench.stored_loop", "--worker", "--n", str(n)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"worker failed ({done.returncode}): {done.stderr[-2000:]}")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        served = sim.control.stats()["requests"]["clearbit"]
    expected_steps = n + 2  # one fetch per item, plus the webhook and the loop
    if set(measured["item_rows"]) != {n} or set(measured["step_rows"]) != {expected_steps}:
        raise BenchError(
            f"{measured['item_rows']} item rows and {measured['step_rows']} step rows stored, "
            f"expected {n} and {expected_steps} in each run"
        )
    expected_served = 2 * ROUNDS * n + 2 * WARMUP_ITEMS
    if served != expected_served:
        raise BenchError(f"server saw {served} lookups, expected {expected_served}")
    growth = measured["rss_growth"]
    engine_rate = n / measured["loop_s"]
    bare_rate = n / measured["bare_s"]
    ratio = engine_rate / bare_rate
    result = {
        "bench": "stored_loop",
        "n": n,
        "concurrency": CONCURRENCY,
        "data": "postgresql",
        "item_rows": measured["item_rows"][0],
        "step_rows": measured["step_rows"][0],
        "engine_loop_s": round(measured["loop_s"], 2),
        "engine_run_s": round(measured["run_s"], 2),
        "engine_items_per_s": round(engine_rate, 1),
        "engine_runs_items_per_s": [round(n / s, 1) for s in measured["stored_runs_s"]],
        "aiohttp_s": round(measured["bare_s"], 2),
        "aiohttp_items_per_s": round(bare_rate, 1),
        "aiohttp_runs_items_per_s": [round(n / s, 1) for s in measured["bare_runs_s"]],
        "ratio": round(ratio, 4),
        "runs_ratios": [
            round(bare_s / s, 4)
            for s, bare_s in zip(measured["stored_runs_s"], measured["bare_runs_s"], strict=True)
        ],
        "rss_idle_mb": round(measured["rss_idle"] / 2**20, 1),
        "rss_peak_mb": round(measured["rss_peak"] / 2**20, 1),
        "rss_growth_mb": round(growth / 2**20, 1),
        "rss_bytes_per_item": round(growth / n),
        "targets": TARGETS,
    }
    result["pass"] = (
        ratio >= TARGETS["ratio"] and result["rss_growth_mb"] <= TARGETS["rss_growth_mb"]
    )
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"stored_loop: n={result['n']} stored engine {result['engine_items_per_s']:.0f} items/s "
        f"vs aiohttp {result['aiohttp_items_per_s']:.0f} items/s → ratio {result['ratio']:.3f} "
        f"(medians; runs {', '.join(f'{r:.3f}' for r in result['runs_ratios'])}) "
        f"(≥{TARGETS['ratio']}), RSS +{result['rss_growth_mb']:.1f} MB "
        f"({result['rss_bytes_per_item']} B/item, ≤{TARGETS['rss_growth_mb']:.0f} MB) "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stored_loop")
    parser.add_argument("--worker", action="store_true", help="the measured process")
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.n)), flush=True)
    else:
        result = run(n=args.n)
        print(summary(result), file=sys.stderr)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
