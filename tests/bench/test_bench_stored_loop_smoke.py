"""Smoke test of bench (g): a small stored run on fresh PostgreSQL databases, its rows
counted, and one well-formed JSON line. Only the shape is checked, never the targets:
timings on a shared machine are noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from bench.databases import fresh_databases

REPO = Path(__file__).resolve().parents[2]


def test_fresh_databases_are_empty_and_dropped_afterwards() -> None:
    with fresh_databases("smoke") as urls:
        with psycopg.connect(urls["DATABASE_URL"]) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone()
        assert tables == (0,)
        name = urls["DATA_DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(urls["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres") as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
        assert left.fetchone() == (0,)


def test_quick_stored_loop_bench_stores_every_row_and_prints_json() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "g", "--quick", "--n", "200"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (result,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert "error" not in result, result
    assert result["bench"] == "stored_loop" and result["n"] == 200
    assert result["item_rows"] == 200 and result["step_rows"] == 202
    assert result["engine_items_per_s"] > 0 and result["aiohttp_items_per_s"] > 0
    # Three stored runs and three bare ones, taking turns: the medians make the ratio.
    assert len(result["engine_runs_items_per_s"]) == len(result["aiohttp_runs_items_per_s"]) == 3
    assert len(result["runs_ratios"]) == 3
    assert isinstance(result["rss_bytes_per_item"], int)
    assert set(result["targets"]) == {"ratio", "rss_growth_mb"}
    assert "stored_loop:" in done.stderr
