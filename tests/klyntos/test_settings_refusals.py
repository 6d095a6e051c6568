"""Settings that cannot work stop start-up with a message naming the setting (a fresh
interpreter each, since settings are read once at import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLYNTOS_")}
    clean.pop("DATABASE_URL", None)  # the embedded default: SQLite
    clean.update(DJANGO_SETTINGS_MODULE="klyntos.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KLYNTOS_EXECUTOR": "threads"}, "KLYNTOS_EXECUTOR must be 'inline' or 'workers'"),
        ({"KLYNTOS_EXECUTOR": "workers"}, "KLYNTOS_EXECUTOR=workers needs PostgreSQL"),
        ({"KLYNTOS_LOOP_CHUNK_SIZE": "0"}, "KLYNTOS_LOOP_CHUNK_SIZE must be between 1 and 100000"),
        (
            {"KLYNTOS_LOOP_CHUNKS_PER_WORKER": "0"},
            "KLYNTOS_LOOP_CHUNKS_PER_WORKER must be between 1 and 10000",
        ),
        ({"KLYNTOS_LOOP_CHUNK_MAX": "0"}, "KLYNTOS_LOOP_CHUNK_MAX must be between 1 and 100000"),
        ({"KLYNTOS_OFF_PEAK_HOURS": "22-6"}, "KLYNTOS_OFF_PEAK_HOURS must be 'HH:MM-HH:MM'"),
        (
            {"KLYNTOS_OFF_PEAK_HOURS": "22:00-06:00", "KLYNTOS_OFF_PEAK_TZ": "Mars/Olympus"},
            "KLYNTOS_OFF_PEAK_TZ: 'Mars/Olympus' is not an IANA time zone",
        ),
        ({"KLYNTOS_PRIORITY_AGING_SECONDS": "-1"}, "KLYNTOS_PRIORITY_AGING_SECONDS must be"),
        ({"KLYNTOS_PROVIDER_NEW_RUN_BURST": "-1"}, "KLYNTOS_PROVIDER_NEW_RUN_BURST must be"),
        ({"KLYNTOS_BREAKER_SYNC_SECONDS": "0"}, "KLYNTOS_BREAKER_SYNC_SECONDS must be seconds"),
        (
            {"KLYNTOS_WORKER_JOB_POLL_SECONDS": "0"},
            "KLYNTOS_WORKER_JOB_POLL_SECONDS must be between 0.05 and 600",
        ),
        (
            {"KLYNTOS_WORKER_JOB_POLL_SECONDS": "700"},
            "KLYNTOS_WORKER_JOB_POLL_SECONDS must be between 0.05 and 600",
        ),
    ],
)
def test_a_setting_that_cannot_work_stops_start_up_naming_it(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    done = start(KLYNTOS_DATA_DIR=str(tmp_path), **env)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and message in done.stderr, done.stderr[-2000:]


def test_the_embedded_defaults_start(tmp_path: Path) -> None:
    done = start(KLYNTOS_DATA_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
