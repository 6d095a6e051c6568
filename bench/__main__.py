"""`python -m bench [--only a|b|c] [--quick]`: JSON lines on stdout, a summary on stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bench import (
    editor_delay,
    emails,
    fixed_cost,
    fixed_latency,
    jittered,
    limits,
    llm_call,
    multi_api,
    overhead,
    providers,
    responsive,
    slots,
    stored_loop,
    template_scale,
    workers,
)

Bench = tuple[str, Callable[..., dict[str, Any]], Callable[[dict[str, Any]], str]]

BENCHES: dict[str, Bench] = {
    "a": ("fixed_latency", fixed_latency.run, fixed_latency.summary),
    "b": ("jittered_latency", jittered.run, jittered.summary),
    "c": ("overhead", overhead.run, overhead.summary),
    "d": ("limits", limits.run, limits.summary),
    "e": ("responsive", responsive.run, responsive.summary),
    "f": ("multi_api", multi_api.run, multi_api.summary),
    "g": ("stored_loop", stored_loop.run, stored_loop.summary),
    "h": ("fixed_cost", fixed_cost.run, fixed_cost.summary),
    "i": ("template_scale", template_scale.run, template_scale.summary),
    "j": ("editor_delay", editor_delay.run, editor_delay.summary),
    "p": ("providers", providers.run, providers.summary),
    "k": ("emails", emails.run, emails.summary),
    "l": ("llm_call", llm_call.run, llm_call.summary),
    "w": ("workers", workers.run, workers.summary),
    "s": ("slots", slots.run, slots.summary),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        choices=sorted(BENCHES),
        action="append",
        help="a: fixed latency, b: jittered latency, c: overhead, d: limits, e: responsiveness"
        " during a 100,000-item run, f: five API calls answered in one waiting webhook call,"
        " g: 100,000 stored items vs bare aiohttp, h: a run's fixed cost, i: 10,000 leads"
        " on PostgreSQL from the CLI with the sockets watched, j: item finished → counted in"
        " Chromium, k: 1,000 personalised emails vs N·L/C, l: event-loop CPU per Agent call"
        " (2,000 calls at concurrency 10, simulator out of process), p: provider AIMD"
        " settling and a shared token budget, s: database statements per item for caps held across workers,"
        " w: runs on workers (the queue's cost, 2 workers vs 1, statements per item)"
        " (repeatable; default all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small N: a smoke run, not a measurement"
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="items for (c) (default 10000, quick 300), (e) (default 100000, quick 5000),"
        " (g) (default 100000, quick 2000) and (l) (default 2000, quick 300)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    selected = args.only or sorted(BENCHES)
    failed = 0
    for key in selected:
        name, run, summary = BENCHES[key]
        kwargs: dict[str, Any] = {"quick": args.quick}
        if key in {"c", "e", "g", "l"} and args.n:
            kwargs["n"] = args.n
        # Recorded with each result: a busy neighbour explains a bad number better than we can.
        load = round(os.getloadavg()[0], 2)
        try:
            result = run(**kwargs)
        except Exception as exc:  # one broken bench must not hide the others' numbers
            result = {"bench": name, "error": f"{type(exc).__name__}: {exc}", "pass": False}
            print(f"{name}: ERROR {result['error']}", file=sys.stderr, flush=True)
            failed += 1
        else:
            print(summary(result), file=sys.stderr, flush=True)
        result["load_avg_1m_before"] = load
        if args.quick:
            result["quick"] = True
        print(json.dumps(result), flush=True)
    # Missed targets are results, not errors: only a bench that could not run fails the command.
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
