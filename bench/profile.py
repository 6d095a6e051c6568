"""`python -m bench.profile a|c [--n N]`: where the engine spends its CPU, by cProfile.

A diagnostic, not a benchmark (cProfile inflates call-heavy code): it runs the parallel
lead template (a) or the one-GET overhead loop (c) against a zero-latency simulator and
prints the top functions by own time plus the same time summed per package/engine file.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import overhead
from bench.harness import REPO, create_enriched_leads, make_leads, run_template, simulator
from engine.core.executor import RunOptions


def _where(filename: str) -> str:
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(f"{REPO}/"):
        return filename[len(str(REPO)) + 1 :]
    return "stdlib/builtins" if filename == "~" else "stdlib:" + filename.rsplit("/", 1)[-1]


def report(profile: cProfile.Profile, items: int, top: int = 25) -> None:
    stats = pstats.Stats(profile)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in rows.values()) or 1.0
    grouped: collections.Counter[str] = collections.Counter()
    for (filename, _line, _name), row in rows.items():
        grouped[_where(filename)] += row[2]
    print(f"own time by package / engine file (µs per item, profiled; {items} items)")
    for where, seconds in grouped.most_common(top):
        print(f"  {seconds / items * 1e6:9.1f}  {seconds / total:6.1%}  {where}")
    print("top functions by own time")
    stats.sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("workload", choices=["a", "c"])
    parser.add_argument("--n", type=int, default=None, help="items (a: 200, c: 3000)")
    args = parser.parse_args(argv)
    n = args.n or (200 if args.workload == "a" else 3000)
    profile = cProfile.Profile()
    with (
        tempfile.TemporaryDirectory(prefix="klyntos-bench-") as tmp,
        simulator(latency_ms=0, no_record=True) as sim,
    ):
        work: Callable[[int, str], float]
        if args.workload == "a":
            db = str(Path(tmp) / "data.sqlite3")
            create_enriched_leads(db)

            def work(count: int, prefix: str) -> float:
                leads = make_leads(count, prefix=prefix)
                return run_template(sim.base_url, db, leads, RunOptions(max_concurrent=10))
        else:

            def work(count: int, prefix: str) -> float:
                return overhead._engine(sim.base_url, overhead.make_items(count))

        work(min(n, 50), "warm")  # one-off imports and first connections stay out of it
        profile.enable()
        wall = work(n, "lead")
        profile.disable()
    print(f"loop wall {wall:.3f} s under cProfile for {n} items")
    report(profile, n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
