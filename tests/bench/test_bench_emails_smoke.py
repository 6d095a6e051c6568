"""Smoke test of bench (k): the personalised-emails template runs from the CLI on fresh
PostgreSQL databases, writes a row per recipient and prints one well-formed JSON line. Only
the shape and the counts are checked, never the timing target: timings on a shared machine
are noise (the figures are the bench's to report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEYS = {"bench", "n", "latency_ms", "concurrency", "ideal_s", "wall_s", "wall_vs_ideal", "rows"}


def test_quick_emails_bench_writes_every_row_and_prints_json() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(  # noqa: S603 -- our own bench
        [sys.executable, "-m", "bench", "--only", "k", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [result] = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert "error" not in result, result
    assert KEYS <= set(result)
    assert (result["n"], result["rows"], result["llm_calls"]) == (100, 100, 100)
    assert result["peak_in_flight"] == result["concurrency"] == 50
