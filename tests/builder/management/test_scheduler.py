"""Two `manage.py scheduler` processes against one PostgreSQL database: every tick of a
schedule starts exactly one run, and the runs they start execute and end."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from builder import services
from engine.models import Run

ROOT = Path(__file__).resolve().parents[3]
EVERY_TWO_SECONDS = "*/2 * * * * *"


def database_url(alias: str) -> str:
    db = settings.DATABASES[alias]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
def test_two_scheduler_processes_start_one_run_per_tick(user: Any, settings: Any) -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("this test needs PostgreSQL (DATABASE_URL)")
    settings.KLYNTOS_SCHEDULE_MIN_SECONDS = 1
    graph = {
        "blocks": [
            {
                "id": "tick",
                "type": "schedule",
                "name": "tick",
                "config": {"cron": EVERY_TWO_SECONDS, "input": {"n": 1}},
            },
            {
                "id": "step",
                "type": "transform",
                "name": "step",
                "config": {"input": "<tick.scheduled_for>", "expression": "@"},
            },
        ],
        "edges": [{"source": "tick", "target": "step"}],
    }
    workflow = services.workflow_create(owner=user, name="ticking", graph=graph)
    assert workflow.schedule_next_at is not None

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "klyntos.settings",
        "DATABASE_URL": database_url("default"),
        "DATA_DATABASE_URL": database_url("data"),
        "KLYNTOS_SCHEDULE_MIN_SECONDS": "1",
        "KLYNTOS_SCHEDULER_POLL_SECONDS": "0.2",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    command = [sys.executable, "manage.py", "scheduler"]
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    try:
        for process in processes:  # both started (a loaded machine takes seconds to)
            assert process.stdout is not None
            seen = [process.stdout.readline()]
            while seen[-1] and "looking for due schedules" not in seen[-1]:
                seen.append(process.stdout.readline())
            assert "looking for due schedules" in seen[-1], seen
        time.sleep(9)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=60)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
        assert "scheduler: stopped (0 run(s) still running)" in output, output

    runs = list(Run.objects.filter(workflow=workflow).order_by("created_at"))
    ticks = [dt.datetime.fromisoformat(r.input["scheduled_for"]) for r in runs]
    assert len(ticks) >= 3, outputs
    assert len(set(ticks)) == len(ticks), ticks  # no tick started twice
    gaps = {(b - a).total_seconds() for a, b in zip(ticks, ticks[1:], strict=False)}
    assert gaps == {2.0}, ticks  # and none was skipped
    assert {r.trigger for r in runs} == {"schedule"}
    assert {r.status for r in runs} == {"succeeded"}, [(r.status, r.error) for r in runs]
    assert [r.outputs["step"]["result"] for r in runs] == [r.input["scheduled_for"] for r in runs]
