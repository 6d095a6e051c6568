"""Smoke test of bench (f): the app starts as `make run` does, the multi-API template answers
waiting webhook calls with the combined body (parallel and chained), and one well-formed JSON
line comes out. Only the shape and the answers are checked, never the timing targets: timings
on a shared machine are noise (the figures are the bench's to report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

KEYS = {
    "bench",
    "calls",
    "latency_ms",
    "repeats",
    "parallel_s",
    "parallel_max_s",
    "sequential_s",
    "sequential_min_s",
    "ratio",
    "body_ok",
    "targets",
    "pass",
}


def test_quick_multi_api_bench_prints_json_lines() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATA_DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "f", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    [result] = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert "error" not in result, result
    assert KEYS <= set(result)
    assert (result["bench"], result["calls"], result["latency_ms"]) == ("multi_api", 5, 300)
    assert result["body_ok"] is True  # every waited answer was the combined body
    assert isinstance(result["pass"], bool)
    assert "multi_api:" in done.stderr
