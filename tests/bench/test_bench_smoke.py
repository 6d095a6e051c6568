"""Smoke test of `python -m bench`: the overhead bench runs small and prints well-formed JSON.

Only the shape is checked, never the targets: timings on a shared machine are noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

OVERHEAD_KEYS = {
    "bench",
    "n",
    "concurrency",
    "engine_s",
    "engine_items_per_s",
    "aiohttp_s",
    "aiohttp_items_per_s",
    "ratio",
    "rss_growth_mb",
    "targets",
    "pass",
}


def test_quick_overhead_bench_prints_json_lines() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A subprocess: the bench owns its event loops and must not share pytest's.
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "c", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    result = lines[0]
    assert "error" not in result, result
    assert OVERHEAD_KEYS <= set(result)
    assert result["bench"] == "overhead"
    assert result["n"] == 300
    assert result["engine_items_per_s"] > 0 and result["aiohttp_items_per_s"] > 0
    assert isinstance(result["pass"], bool)
    assert set(result["targets"]) == {"ratio", "rss_growth_mb"}
    assert "overhead:" in done.stderr  # the human summary


def test_quick_limits_bench_prints_its_measures() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "d", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (result,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert result["bench"] == "limits" and "error" not in result, result
    assert result["refused_by"] == "KLYNTOS_MAX_BLOCKS" and result["validate_errors"] == 0
    assert set(result["ratios"]) == set(result["targets"])
    assert isinstance(result["pass"], bool)
