"""The lead template run the way a user runs it from a terminal: `manage.py run_workflow`.

Used by (f) and (h): each CLI run is a process of its own, on fresh PostgreSQL databases
(`bench/databases.py`), against the simulator in sandbox mode. While it runs, its RSS is
sampled and the run's row is watched, so the moment its final status becomes visible in
the database is measured from outside, not reported by the process itself.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.harness import REPO, BenchError

TEMPLATE_SLUG = "parallel-lead-enrichment"
FINAL = ("succeeded", "partially_succeeded", "failed", "cancelled")
# Seconds between two looks at the run's row: slow while its items run (200 looks a second
# cost this 2-core machine ~a tenth of a core, between this thread and its PostgreSQL
# backend, which the run under measure competes with), fast once every item has ended, so
# the moment the final status shows is still seen within WATCH_EVERY.
WATCH_EVERY = 0.005
WATCH_WHILE_ITEMS_RUN = 0.05
CLI_TIMEOUT = 1800.0


def klyntos_env(databases: dict[str, str], simulator_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    env.pop("REDIS_URL", None)
    env.update(databases)
    env.update(
        DJANGO_SETTINGS_MODULE="klyntos.settings",
        KLYNTOS_SANDBOX="1",
        KLYNTOS_SIMULATOR_URL=simulator_url,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(  # noqa: S603 -- manage.py with our own arguments
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def migrate(env: dict[str, str]) -> None:
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "migrate", "--database", "data", "--no-input", "-v", "0")


@dataclass
class CliRun:
    summary: dict[str, Any]  # the CLI's last stdout line
    peak_rss: int
    final_visible_at: float | None  # time.time() when the row's final status was first read
    stderr: str
    row: dict[str, Any] = field(default_factory=dict)


class _RowWatcher(threading.Thread):
    """Polls the newest run's status; records when a final status first shows (module
    constants: slowly until its items have all ended)."""

    def __init__(self, database_url: str, after: float) -> None:
        super().__init__(name="bench-run-watch", daemon=True)
        self.database_url = database_url
        self.after = after
        self.final_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT status, total > 0 AND succeeded + failed >= total FROM engine_run"
                    " WHERE created_at >= to_timestamp(%s) ORDER BY created_at DESC LIMIT 1",
                    [self.after],
                ).fetchone()
                if row is not None and row[0] in FINAL:
                    self.final_at = time.time()
                    return
                items_ended = row is not None and row[1]
                self.stop.wait(WATCH_EVERY if items_ended else WATCH_WHILE_ITEMS_RUN)


def run_template(env: dict[str, str], leads: list[dict[str, Any]]) -> CliRun:
    """One CLI run of the lead template over `leads`; its summary, peak RSS and row."""
    return run_cli(env, TEMPLATE_SLUG, {"leads": leads})


# A diagnostic hook: `BENCH_CLI_PREFIX="py-spy record -f raw --threads -o out.txt --"` runs
# the CLI under a profiler (the RSS sampled is then the prefix process's, not the CLI's).
_PREFIX = shlex.split(os.environ.get("BENCH_CLI_PREFIX", ""))


def run_cli(env: dict[str, str], slug: str, payload: Any) -> CliRun:
    """One CLI run of template `slug` on `payload`; its summary, peak RSS and row."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as body:
        json.dump(payload, body)
    try:
        began = time.time()
        watcher = _RowWatcher(env["DATABASE_URL"], began)
        watcher.start()
        process = subprocess.Popen(  # noqa: S603 -- manage.py with our own arguments
            [*_PREFIX, sys.executable, "manage.py", "run_workflow", slug, "--input", body.name],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = _sample_rss(process)
        out, err = process.communicate(timeout=CLI_TIMEOUT)
        watcher.stop.set()
        watcher.join(timeout=10)
    finally:
        Path(body.name).unlink(missing_ok=True)
    if process.returncode != 0:
        raise BenchError(f"run_workflow failed ({process.returncode}): {err[-2000:]}")
    # The summary is the last JSON line (a profiler prefix may print after it).
    summary = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return CliRun(summary, peak, watcher.final_at, err, run_row(env, summary["run_id"]))


def _sample_rss(process: subprocess.Popen[str]) -> int:
    """The process's peak RSS, sampled every 20 ms until it exits."""
    peak = 0
    try:
        watched = psutil.Process(process.pid)
        deadline = time.monotonic() + CLI_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            peak = max(peak, watched.memory_info().rss)
            time.sleep(0.02)
    except psutil.NoSuchProcess:
        pass
    return peak


def run_row(env: dict[str, str], run_id: str) -> dict[str, Any]:
    """The run's times (epoch seconds) and counters, with its items' last end."""
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT status, total, succeeded, failed, extract(epoch FROM created_at),"
            " extract(epoch FROM started_at), extract(epoch FROM finished_at), loops"
            " FROM engine_run WHERE id = %s",
            [run_id],
        ).fetchone()
        if row is None:
            raise BenchError(f"run {run_id} is not in the database")
        items = conn.execute(
            "SELECT count(*), extract(epoch FROM max(finished_at)) FROM engine_itemrun"
            " WHERE run_id = %s",
            [run_id],
        ).fetchone()
    assert items is not None
    status, total, succeeded, failed, created, started, finished, loops = row
    return {
        "status": status,
        "total": total,
        "succeeded": succeeded,
        "failed": failed,
        "created_at": float(created),
        "started_at": float(started) if started is not None else None,
        "finished_at": float(finished) if finished is not None else None,
        "loops": loops,
        "item_rows": int(items[0]),
        "last_item_at": float(items[1]) if items[1] is not None else None,
    }


def enriched_rows(env: dict[str, str]) -> int:
    """Rows in every owner's `enriched_leads` (the data database, one schema per owner)."""
    with psycopg.connect(env["DATA_DATABASE_URL"]) as conn:
        schemas = [
            r[0]
            for r in conn.execute(
                "SELECT table_schema FROM information_schema.tables"
                " WHERE table_name = 'enriched_leads'"
            )
        ]
        total = 0
        for schema in schemas:
            count = conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {}.enriched_leads").format(
                    psycopg.sql.Identifier(schema)
                )
            ).fetchone()
            total += int(count[0]) if count else 0
    return total
