"""Smoke test of bench l: a few Agent calls against the simulator, one JSON line of CPU per call.

Only the shape is checked: CPU figures on a shared machine are noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_llm_call_bench_prints_cpu_per_call() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "l", "--quick", "--n", "50"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [result] = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert "error" not in result, result
    assert result["bench"] == "llm_call" and result["calls"] == 50
    assert result["cpu_us_per_call"] > 0
    assert result["rounds_cpu_us_per_call"] == [result["cpu_us_per_call"]]
    assert "µs of CPU per Agent call" in done.stderr
