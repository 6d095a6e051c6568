"""Settings that cannot work stop start-up with a message naming the setting (a fresh
interpreter each, since settings are read once at import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


SETUP = ("-c", "import django; django.setup()")


def start(
    *, args: tuple[str, ...] = SETUP, settings: str = "klyntos.settings", **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLYNTOS_")}
    if settings == "klyntos.settings":
        clean.pop("DATABASE_URL", None)  # the embedded default: SQLite
    clean.update(DJANGO_SETTINGS_MODULE=settings, **env)
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# A value the process cannot work with, and the exact line start-up stops with.
REFUSED = [
    (
        {"KLYNTOS_EXECUTOR": "threads"},
        "KLYNTOS_EXECUTOR must be 'inline' or 'workers', not 'threads'",
    ),
    (
        {"KLYNTOS_EXECUTOR": "workers"},
        "KLYNTOS_EXECUTOR=workers needs PostgreSQL (DATABASE_URL=postgres://…): the job queue"
        " lives there",
    ),
    # Out of range (the operator test's cases first).
    (
        {"KLYNTOS_RUN_LEASE_SECONDS": "0"},
        "KLYNTOS_RUN_LEASE_SECONDS must be a number of seconds from 3 to 3600, got '0'",
    ),
    (
        {"KLYNTOS_RUN_LEASE_SECONDS": "-5"},
        "KLYNTOS_RUN_LEASE_SECONDS must be a number of seconds from 3 to 3600, got '-5'",
    ),
    (
        {"KLYNTOS_RUN_RESUME_POLL_SECONDS": "0"},
        "KLYNTOS_RUN_RESUME_POLL_SECONDS must be a number of seconds from 0.1 to 3600, got '0'",
    ),
    (
        {"KLYNTOS_CHUNK_POLL_SECONDS": "0"},
        "KLYNTOS_CHUNK_POLL_SECONDS must be a number of seconds from 0.05 to 60, got '0'",
    ),
    (
        {"KLYNTOS_DRAIN_SECONDS": "-1"},
        "KLYNTOS_DRAIN_SECONDS must be a number of seconds from 0 (stop at once) to 3600, got '-1'",
    ),
    (
        {"KLYNTOS_RUNS_PER_MINUTE": "-3"},
        "KLYNTOS_RUNS_PER_MINUTE must be a whole number from 0 (no limit) to 1000000, got '-3'",
    ),
    (
        {"KLYNTOS_BLOCK_TIMEOUT": "0"},
        "KLYNTOS_BLOCK_TIMEOUT must be a number of seconds from 0.1 to 86400, got '0'",
    ),
    (
        {"KLYNTOS_RETRY_ATTEMPTS": "0"},
        "KLYNTOS_RETRY_ATTEMPTS must be a whole number from 1 to 10, got '0'",
    ),
    (
        {"KLYNTOS_RETRY_ATTEMPTS": "100"},
        "KLYNTOS_RETRY_ATTEMPTS must be a whole number from 1 to 10, got '100'",
    ),
    (
        {"KLYNTOS_MAX_LOOP_DEPTH": "9"},
        "KLYNTOS_MAX_LOOP_DEPTH must be a whole number from 1 to 5, got '9'",
    ),
    (
        {"KLYNTOS_DATA_POOLS": "0"},
        "KLYNTOS_DATA_POOLS must be a whole number from 1 to 1000, got '0'",
    ),
    (
        {"KLYNTOS_OWNER_RUNS_PER_MINUTE": "-1"},
        "KLYNTOS_OWNER_RUNS_PER_MINUTE must be a whole number from 0 (no limit) to 1000000,"
        " got '-1'",
    ),
    (
        {"KLYNTOS_LOOP_CHUNK_SIZE": "0"},
        "KLYNTOS_LOOP_CHUNK_SIZE must be a whole number from 1 to 100000, got '0'",
    ),
    (
        {"KLYNTOS_LOOP_CHUNKS_PER_WORKER": "0"},
        "KLYNTOS_LOOP_CHUNKS_PER_WORKER must be a whole number from 1 to 10000, got '0'",
    ),
    (
        {"KLYNTOS_LOOP_CHUNK_MAX": "0"},
        "KLYNTOS_LOOP_CHUNK_MAX must be a whole number from 1 to 100000, got '0'",
    ),
    (
        {"KLYNTOS_WORKER_JOB_POLL_SECONDS": "0"},
        "KLYNTOS_WORKER_JOB_POLL_SECONDS must be a number of seconds from 0.05 to 600, got '0'",
    ),
    (
        {"KLYNTOS_WORKER_JOB_POLL_SECONDS": "700"},
        "KLYNTOS_WORKER_JOB_POLL_SECONDS must be a number of seconds from 0.05 to 600, got '700'",
    ),
    (
        {"KLYNTOS_BREAKER_SYNC_SECONDS": "0"},
        "KLYNTOS_BREAKER_SYNC_SECONDS must be a number of seconds from 0.05 to 60, got '0'",
    ),
    (
        {"KLYNTOS_PRIORITY_AGING_SECONDS": "-1"},
        "KLYNTOS_PRIORITY_AGING_SECONDS must be a number of seconds from 0 (strict priority)"
        " to 86400, got '-1'",
    ),
    (
        {"KLYNTOS_PROVIDER_NEW_RUN_BURST": "-1"},
        "KLYNTOS_PROVIDER_NEW_RUN_BURST must be a number from 0 (no burst) to 100, got '-1'",
    ),
    (
        {"KLYNTOS_PRECONNECT_WAIT": "6"},
        "KLYNTOS_PRECONNECT_WAIT must be a number of seconds from 0 (off) to 5, got '6'",
    ),
    (
        {"KLYNTOS_PROVIDER_AIMD_START": "0"},
        "KLYNTOS_PROVIDER_AIMD_START must be a fraction from 0.01 to 1, got '0'",
    ),
    (
        {"KLYNTOS_SLOT_LEASE_SECONDS": "0"},
        "KLYNTOS_SLOT_LEASE_SECONDS must be a number of seconds from 1 to 3600, got '0'",
    ),
    (
        {"KLYNTOS_SLOT_LEASE_SECONDS": "5", "KLYNTOS_SLOT_POLL_SECONDS": "6"},
        "KLYNTOS_SLOT_POLL_SECONDS must be a number of seconds from 0.01 to"
        " KLYNTOS_SLOT_LEASE_SECONDS (5), got '6'",
    ),
    (
        {"KLYNTOS_EXPRESSION_THREADS": "4", "KLYNTOS_EXPRESSION_OWNER_THREADS": "5"},
        "KLYNTOS_EXPRESSION_OWNER_THREADS must be a whole number from 1 to"
        " KLYNTOS_EXPRESSION_THREADS (4), got '5'",
    ),
    (
        {"KLYNTOS_WEBHOOK_MAX_BYTES": "0"},
        "KLYNTOS_WEBHOOK_MAX_BYTES must be a number of bytes from 1 to 1073741824, got '0'",
    ),
    (
        {"KLYNTOS_RUN_BUDGET_USD": "-2"},
        "KLYNTOS_RUN_BUDGET_USD must be a number of dollars from 0 to 1000000"
        " (or unset: no budget), got '-2'",
    ),
    (
        {"KLYNTOS_MAX_WAIT_SECONDS": "inf"},
        "KLYNTOS_MAX_WAIT_SECONDS must be a number of seconds from 0 (no waiting) to 3600,"
        " got 'inf'",
    ),
    (
        {"KLYNTOS_BLOCK_TIMEOUT": "nan"},
        "KLYNTOS_BLOCK_TIMEOUT must be a number of seconds from 0.1 to 86400, got 'nan'",
    ),
    # Not a number: the variable and what it expects, not a bare int() error.
    (
        {"KLYNTOS_MAX_ITEMS_IN_FLIGHT": "ten"},
        "KLYNTOS_MAX_ITEMS_IN_FLIGHT must be a whole number from 1 to 10000, got 'ten'",
    ),
    (
        {"KLYNTOS_LOOP_CHUNK_SIZE": "ten"},
        "KLYNTOS_LOOP_CHUNK_SIZE must be a whole number from 1 to 100000, got 'ten'",
    ),
    (
        {"KLYNTOS_WEBHOOK_MAX_BYTES": "1MB"},
        "KLYNTOS_WEBHOOK_MAX_BYTES must be a number of bytes from 1 to 1073741824, got '1MB'",
    ),
    (
        {"KLYNTOS_RUN_LEASE_SECONDS": "30s"},
        "KLYNTOS_RUN_LEASE_SECONDS must be a number of seconds from 3 to 3600, got '30s'",
    ),
    (
        {"KLYNTOS_RETRY_ATTEMPTS": "2.5"},
        "KLYNTOS_RETRY_ATTEMPTS must be a whole number from 1 to 10, got '2.5'",
    ),
    # Booleans: the usual spellings or nothing.
    (
        {"KLYNTOS_SANDBOX": "yes-please"},
        "KLYNTOS_SANDBOX must be 1/0, true/false, yes/no or on/off, got 'yes-please'",
    ),
    ({"DEBUG": "maybe"}, "DEBUG must be 1/0, true/false, yes/no or on/off, got 'maybe'"),
    # Host overrides: parsed at start by the outbound calls' own parser.
    (
        {"KLYNTOS_HOST_OVERRIDES": "api.openai.com"},
        "KLYNTOS_HOST_OVERRIDES: host override 'api.openai.com': expected 'host=http(s)://base'",
    ),
    (
        {"KLYNTOS_HOST_OVERRIDES": "api.openai.com=127.0.0.1:8765"},
        "KLYNTOS_HOST_OVERRIDES: host override 'api.openai.com=127.0.0.1:8765': base"
        " '127.0.0.1:8765' must be an http:// or https:// URL with a host",
    ),
    (
        {"KLYNTOS_HOST_OVERRIDES": "ok.example=http://127.0.0.1:1,=http://127.0.0.1:2"},
        "KLYNTOS_HOST_OVERRIDES: host override '=http://127.0.0.1:2': empty or malformed host",
    ),
    # Checked by the engine app as it starts (engine/apps.py), unchanged.
    (
        {"KLYNTOS_OFF_PEAK_HOURS": "22-6"},
        "KLYNTOS_OFF_PEAK_HOURS must be 'HH:MM-HH:MM' (e.g. 22:00-06:00), got '22-6'",
    ),
    (
        {"KLYNTOS_OFF_PEAK_HOURS": "22:00-06:00", "KLYNTOS_OFF_PEAK_TZ": "Mars/Olympus"},
        "KLYNTOS_OFF_PEAK_TZ: 'Mars/Olympus' is not an IANA time zone (e.g. Europe/Paris)",
    ),
]


@pytest.mark.parametrize(("env", "message"), REFUSED, ids=lambda v: str(v)[:60])
def test_a_setting_that_cannot_work_stops_start_up_naming_it(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    done = start(KLYNTOS_DATA_DIR=str(tmp_path), **env)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"django.core.exceptions.ImproperlyConfigured: {message}", done.stderr[-2000:]


def test_manage_py_check_stops_with_the_message(tmp_path: Path) -> None:
    """`manage.py check` (and so `make run`, the worker, the scheduler: every command) fails
    fast with the same line."""
    done = start(
        args=("manage.py", "check"), KLYNTOS_DATA_DIR=str(tmp_path), KLYNTOS_RUN_LEASE_SECONDS="0"
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: KLYNTOS_RUN_LEASE_SECONDS must be a"
        " number of seconds from 3 to 3600, got '0'"
    )


def test_the_embedded_defaults_start(tmp_path: Path) -> None:
    done = start(KLYNTOS_DATA_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]


# Every KLYNTOS_* value the test suite and the benchmarks give a process through its
# environment (grep tests/ bench/), together: all inside their ranges.
SUITE_AND_BENCH_VALUES = {
    # tests/engine/management/test_worker.py (LEASE = 3, POLL = 1)
    "KLYNTOS_RUN_LEASE_SECONDS": "3",
    "KLYNTOS_SLOT_LEASE_SECONDS": "3",
    "KLYNTOS_RUN_RESUME_POLL_SECONDS": "1",
    "KLYNTOS_WORKER_JOB_POLL_SECONDS": "0.5",
    "KLYNTOS_HOST_OVERRIDES": "api.openai.com=http://127.0.0.1:8765,slack.com=http://127.0.0.1:8765",
    # tests/engine/test_slots.py
    "KLYNTOS_SLOT_POLL_SECONDS": "0.5",
    # tests/engine/management/test_worker_rates.py, test_worker_breakers.py
    "KLYNTOS_BREAKER_SYNC_SECONDS": "0.1",
    "KLYNTOS_PROVIDER_WINDOW_SECONDS": "1.0",
    "KLYNTOS_RETRY_ATTEMPTS": "8",
    # tests/engine/test_distribute.py, test_worker_breakers.py (100000 in test_worker_rates)
    "KLYNTOS_LOOP_CHUNK_SIZE": "20",
    "KLYNTOS_LOOP_CHUNKS_PER_WORKER": "10000",
    # tests/builder/management/test_scheduler.py, tests/e2e/test_schedule_browser.py
    "KLYNTOS_SCHEDULE_MIN_SECONDS": "1",
    "KLYNTOS_SCHEDULER_POLL_SECONDS": "0.2",
    # tests/builder/management/test_run_local_durable.py
    "KLYNTOS_DRAIN_SECONDS": "30",
    # tests/hostile/test_hostile_web_recursion.py
    "KLYNTOS_MAX_CALL_DEPTH": "3",
    # bench/cli_runs.py, tests/e2e/conftest.py, `make run`
    "KLYNTOS_SANDBOX": "1",
}


@pytest.mark.parametrize(
    "env",
    [
        SUITE_AND_BENCH_VALUES,
        {"KLYNTOS_LOOP_CHUNK_SIZE": "100000", "KLYNTOS_BREAKER_SYNC_SECONDS": "0.2"},
        {"KLYNTOS_LOOP_CHUNK_SIZE": "100"},
        # The edges of some ranges, and the other spellings of a boolean.
        {
            "KLYNTOS_RUNS_PER_MINUTE": "0",
            "KLYNTOS_OWNER_RUNS_PER_MINUTE": "0",
            "KLYNTOS_DRAIN_SECONDS": "0",
            "KLYNTOS_PRECONNECT_WAIT": "0",
            "KLYNTOS_MAX_LOOP_DEPTH": "1",
            "KLYNTOS_RETRY_ATTEMPTS": "10",
            "KLYNTOS_RUN_LEASE_SECONDS": "3600",
            "KLYNTOS_RUN_BUDGET_USD": "0",
            "KLYNTOS_SANDBOX": "Off",
            "DEBUG": "no",
        },
        {"KLYNTOS_SANDBOX": "TRUE", "DEBUG": "0", "KLYNTOS_RUN_BUDGET_USD": ""},
    ],
    ids=["suite-and-bench", "worker-rates", "distribute", "range-edges", "spellings"],
)
def test_the_values_the_suite_and_benchmarks_use_start(env: dict[str, str], tmp_path: Path) -> None:
    done = start(KLYNTOS_DATA_DIR=str(tmp_path), **env)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_test_settings_start(tmp_path: Path) -> None:
    """klyntos/test_settings.py (what the suite runs under) loads as well."""
    done = start(settings="klyntos.test_settings", KLYNTOS_DATA_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
