"""Smoke test of bench (p): the provider governance bench runs small and prints its figures.

Only the shape is checked, never the targets: timings on a shared machine are noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_providers_bench_prints_settling_and_budget_figures() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "p", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    [result] = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert "error" not in result, result
    assert result["bench"] == "providers"
    for name in ("aimd_capped", "aimd_uncapped"):
        scenario = result[name]
        assert scenario["items"] == 200
        assert {"time_to_settle_s", "calls_wasted", "after_settle_429_pct"} <= set(scenario)
        assert scenario["calls"] >= 200
    assert result["tokens"]["tokens"] > 0
    assert "calls wasted" in done.stderr
