"""Smoke test of bench (e): the app starts as `make run` does, a small run executes while the
API is probed, and one well-formed JSON line comes out. Only the shape is checked, never the
targets: timings on a shared machine are noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

KEYS = {
    "bench",
    "n",
    "concurrency",
    "run_status",
    "succeeded",
    "failed",
    "run_s",
    "items_per_s",
    "samples",
    "p50_ms",
    "p95_ms",
    "max_ms",
    "targets",
    "pass_p95",
    "pass_max",
    "pass",
}


def test_quick_responsiveness_bench_prints_json_lines() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATA_DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "e", "--quick", "--n", "500"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    result = lines[0]
    assert "error" not in result, result
    assert KEYS <= set(result)
    assert result["bench"] == "responsive" and result["n"] == 500
    assert result["run_status"] == "succeeded" and result["succeeded"] == 500
    assert result["samples"] >= 1 and result["p95_ms"] > 0 and result["items_per_s"] > 0
    assert isinstance(result["pass"], bool)
    assert set(result["targets"]) == {"p95_ms", "max_ms"}
    assert "responsive:" in done.stderr
