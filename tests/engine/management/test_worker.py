"""Runs on workers (KLYNTOS_EXECUTOR=workers, issue 8 item 4): real `manage.py worker`
processes against the test's PostgreSQL database take the runs the web side defers, an
editor connected here hears their progress through Redis, and when a worker is killed with
-9 the other one resumes its run once the lease runs out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings

from builder import services
from engine.models import ItemRun, Run
from simulator.testing import RunningSimulator
from tests.builder.management.test_scheduler import database_url
from tests.engine.conftest import PROVIDER_HOSTS
from tests.engine.test_consumers import open_socket, session_cookie
from tests.engine.test_resume import calls_by_domain, lookups

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ROOT = Path(__file__).resolve().parents[3]
LEASE = 3
POLL = 1


def start_workers(
    simulator: RunningSimulator, count: int = 2, concurrency: int = 4, **extra: str
) -> list[subprocess.Popen[str]]:
    if not django_settings.ON_POSTGRESQL or not django_settings.REDIS_URL:
        pytest.fail("workers need PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "klyntos.settings",
        "DATABASE_URL": database_url("default"),
        "DATA_DATABASE_URL": database_url("data"),
        "KLYNTOS_EXECUTOR": "workers",
        "KLYNTOS_HOST_OVERRIDES": ",".join(f"{h}={simulator.base_url}" for h in PROVIDER_HOSTS),
        "KLYNTOS_RUN_LEASE_SECONDS": str(LEASE),
        # A killed worker's loop slots free with their lease, like its runs.
        "KLYNTOS_SLOT_LEASE_SECONDS": str(LEASE),
        "KLYNTOS_RUN_RESUME_POLL_SECONDS": str(POLL),
        "KLYNTOS_WORKER_JOB_POLL_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
        # The provider keys the suite's own runs get (tests/engine/conftest.py).
        "OPENAI_API_KEY": django_settings.OPENAI_API_KEY or "sk-test-key",
        "SLACK_BOT_TOKEN": django_settings.SLACK_BOT_TOKEN or "xoxb-test-token",
        **extra,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "worker",
                "--concurrency",
                str(concurrency),
                "--name",
                f"w{i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(count)
    ]
    for process in processes:  # both listening for jobs (a loaded machine takes seconds)
        assert process.stdout is not None
        lines: list[str] = []
        # Two procrastinate workers (runs, chunks): each logs before its LISTEN is up, and a
        # job it did not hear of it finds by looking (KLYNTOS_WORKER_JOB_POLL_SECONDS).
        while sum("Starting worker on queues" in line for line in lines) < 2:
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        # Keep reading, so that the worker never blocks on a full pipe.
        threading.Thread(target=lambda s=process.stdout, k=lines: k.extend(s), daemon=True).start()

    return processes


def stop_workers(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.1)


def started(owner: Any, items: int) -> Run:
    run = lookups(owner, items)  # created queued, not started
    Run.objects.filter(pk=run.pk).delete()
    workflow = owner.workflows.get(pk=run.workflow_id)
    started_run, _ = services.run_start(workflow=workflow, input=run.input)
    return started_run


def test_workers_execute_the_runs_the_web_side_defers_and_report_live(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_EXECUTOR = "workers"
    workers = start_workers(simulator)
    try:
        first = started(owner, 12)
        heard = async_to_sync(listen)(owner, first.pk)
        runs = [first] + [started(owner, 12) for _ in range(5)]
        wait_until(
            lambda: (
                Run.objects.filter(pk__in=[r.pk for r in runs], status="succeeded").count()
                == len(runs)
            ),
            90,
            "six runs on two workers",
        )
    finally:
        stop_workers(workers)
    assert all(w.returncode == 0 for w in workers)
    by_worker = Counter(
        ItemRun.objects.filter(run__in=runs).values_list("worker", flat=True).iterator()
    )
    assert sum(by_worker.values()) == 6 * 12
    assert len(by_worker) == 2, by_worker  # both workers ran items
    assert heard["deltas"] >= 1 and heard["ended"], heard  # live, through Redis
    assert sum(calls_by_domain(simulator, "clearbit").values()) == 6 * 12


async def listen(owner: Any, run_id: Any, within: float = 60) -> dict[str, Any]:
    """An editor's socket on this (web) process, following a run executed by a worker: how
    many deltas it heard, the run's succeeded counts they carried, and whether it ended."""
    cookie = await asyncio.to_thread(session_cookie, owner.username, "pw-owner-123")
    socket = await open_socket(run_id, cookie)
    connected, _ = await socket.connect(timeout=10)
    assert connected
    heard: dict[str, Any] = {
        "deltas": 0,
        "ended": False,
        "progress": [],
        "items": set(),  # keys of the items deltas carried
        "workers": set(),  # who ran them, as the rows said
        "largest": 0,  # bytes of the largest frame
    }
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        message = await socket.receive_json_from(timeout=within)
        heard["largest"] = max(heard["largest"], len(json.dumps(message)))
        if message.get("type") == "delta":
            heard["deltas"] += 1
            if isinstance(message.get("run"), dict) and "succeeded" in message["run"]:
                heard["progress"].append(message["run"]["succeeded"])
            for row in message.get("items") or []:
                heard["items"].add(row.get("key"))
                if row.get("worker"):
                    heard["workers"].add(row["worker"])
        if message.get("type") == "snapshot" and message.get("final"):
            heard["ended"] = True
            break
    await socket.disconnect()
    return heard


def test_a_run_on_a_killed_worker_is_resumed_by_the_other(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_EXECUTOR = "workers"
    simulator.control.configure(latency_ms=150)
    workers = start_workers(simulator)
    try:
        run = started(owner, 40)
        wait_until(
            lambda: ItemRun.objects.filter(run=run, status="succeeded").count() >= 10,
            60,
            "a quarter of the run",
        )
        holder = ItemRun.objects.filter(run=run).values_list("worker", flat=True).first()
        victim = next(w for w in workers if holder and holder.endswith(f":{w.pid}"))
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(
            lambda: Run.objects.get(pk=run.pk).status == "succeeded", 90, "resumed elsewhere"
        )
        took = time.monotonic() - killed_at
    finally:
        stop_workers(workers)
    done = Run.objects.get(pk=run.pk)
    assert done.succeeded == 40 and done.failed == 0 and done.resumes == 1
    survivors = set(ItemRun.objects.filter(run=run).values_list("worker", flat=True))
    assert len(survivors) == 2  # items finished on both: before and after the kill
    clearbit = calls_by_domain(simulator, "clearbit")
    assert set(clearbit) == {f"d{i}.io" for i in range(40)}
    assert sum(clearbit.values()) <= 40 + 3  # only what was in flight at the kill (cap 3)
    # Within the lease plus the look-out's interval, plus the remaining items' own time.
    assert took < LEASE + POLL + 40 * 0.3 + 10, took


def test_a_worker_refuses_a_concurrency_below_one_and_sqlite(settings: Any) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--concurrency must be at least 1"):
        call_command("worker", "--concurrency", "0")
    settings.ON_POSTGRESQL = False
    with pytest.raises(CommandError, match="workers need PostgreSQL"):
        call_command("worker")
