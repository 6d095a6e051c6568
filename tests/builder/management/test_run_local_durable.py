"""`make run` (run_local: daphne, SQLite, sandbox) keeps a batch through kill -9 and through
SIGTERM: the same run goes on at the next start from its stored rows and ends succeeded,
with every lead stored once, one Slack post and no succeeded step run twice (issue 8's
acceptance for the embedded mode)."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from builder.gallery import GALLERY_DIR
from simulator.testing import RunningSimulator, run_in_thread
from tests.e2e.conftest import LocalApp, start_local_app

LEADS = 200
CAP = 10  # the template loop's max_concurrent


@pytest.fixture
def simulator() -> Any:
    # Slow enough that 200 leads take several seconds, so the process stops mid-batch.
    with run_in_thread(latency_ms=120) as running:
        yield running


def leads() -> list[dict[str, Any]]:
    sample = json.loads((GALLERY_DIR / "parallel-lead-enrichment.sample.json").read_text())
    shape = sample["leads"][0]
    return [
        {
            **shape,
            "id": f"lead-{i:04d}",
            "name": f"Lead {i}",
            "email": f"p{i}@co{i}.example.com",
            "domain": f"co{i}.example.com",
        }
        for i in range(LEADS)
    ]


def webhook_url(app: LocalApp) -> str:
    line = next(line for line in app.lines if "Webhook of" in line)
    return line.rsplit(": ", 1)[1].strip()


def post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 -- the local app's http:// URL
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def start(
    data_dir: Path, simulator: RunningSimulator, *, restart: bool = False, **env: str
) -> LocalApp:
    return start_local_app(
        data_dir,
        {
            "KLYNTOS_SIMULATOR_URL": simulator.base_url,
            "KLYNTOS_RUN_RESUME_POLL_SECONDS": "1",
            **env,
        },
        restart=restart,
    )


def wait_until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.05)


def calls(simulator: RunningSimulator, endpoint: str) -> int:
    return int(simulator.control.stats()["requests"].get(endpoint, 0))


def calls_by(simulator: RunningSimulator, endpoint: str, field: str) -> Counter[str]:
    received = simulator.control.stats()["received"]
    return Counter(
        str(r["query"].get(field)) for r in received if r["endpoint"] == endpoint and r["query"]
    )


def finished(app: LocalApp, body: Any, key: str) -> tuple[int, Any]:
    """Post the same batch again with the same Idempotency-Key, waiting for the run's end:
    the answer is the same run's."""
    deadline = time.monotonic() + 120
    while True:
        status, answer = post(webhook_url(app), body, {"Idempotency-Key": key, "Prefer": "wait=25"})
        if status != 202 or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.2)


def stored_run(data_dir: Path) -> dict[str, Any]:
    with sqlite3.connect(data_dir / "klyntos.sqlite3") as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT status, succeeded, failed, total, resumes, error FROM engine_run"
            " ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        return dict(row)


def stored_leads(data_dir: Path) -> int:
    (path,) = list(data_dir.rglob("owner-*.sqlite3"))
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM enriched_leads").fetchone()[0])


def stop(app: LocalApp) -> None:
    if app.process.poll() is None:
        app.process.kill()
    app.process.wait(timeout=20)


@pytest.mark.django_db
def test_kill_9_halfway_then_start_again_finishes_the_same_run(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    body = {"leads": leads()}
    first = start(tmp_path, simulator)
    try:
        status, accepted = post(webhook_url(first), body, {"Idempotency-Key": "batch-1"})
        assert status == 202, accepted
        wait_until(lambda: calls(simulator, "clearbit") >= LEADS // 2, 120, "half the lookups")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=20)
    finally:
        stop(first)
    before = stored_run(tmp_path)
    assert before["status"] == "running" and before["succeeded"] < LEADS, before

    second = start(tmp_path, simulator, restart=True)
    try:
        status, answer = finished(second, body, "batch-1")
        assert status == 200, answer
    finally:
        stop(second)
    run = stored_run(tmp_path)
    assert run == {**run, "status": "succeeded", "succeeded": LEADS, "failed": 0, "resumes": 1}
    assert stored_leads(tmp_path) == LEADS
    assert calls(simulator, "slack") == 1
    # Made again: at most the cap's worth. A body step keeps its permit until its row is
    # stored (engine/core/step_permits.py), so the lookups in flight at the kill and those
    # finished but not stored yet are both among each lookup's 10 permits.
    assert LEADS <= calls(simulator, "clearbit") <= LEADS + CAP
    assert LEADS <= calls(simulator, "linkedin") <= LEADS + CAP


@pytest.mark.django_db
def test_sigterm_drains_the_items_in_flight_and_the_next_start_repeats_nothing(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    body = {"leads": leads()}
    first = start(tmp_path, simulator, KLYNTOS_DRAIN_SECONDS="30")
    try:
        status, accepted = post(webhook_url(first), body, {"Idempotency-Key": "batch-2"})
        assert status == 202, accepted
        wait_until(lambda: calls(simulator, "clearbit") >= LEADS // 4, 120, "a quarter done")
        stopping = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        first.process.wait(timeout=45)
        took = time.monotonic() - stopping
    finally:
        stop(first)
    assert any("letting the items in flight finish" in line for line in first.lines), first.lines[
        -20:
    ]
    assert took < 40, first.lines[-30:]  # what the stop did, should it ever hang
    before = stored_run(tmp_path)
    assert before["status"] == "running" and before["failed"] == 0, before
    assert 0 < before["succeeded"] < LEADS
    held_at_stop = calls(simulator, "clearbit")

    second = start(tmp_path, simulator, restart=True)
    try:
        status, answer = finished(second, body, "batch-2")
        assert status == 200, answer
    finally:
        stop(second)
    run = stored_run(tmp_path)
    assert run == {**run, "status": "succeeded", "succeeded": LEADS, "failed": 0, "resumes": 1}
    assert stored_leads(tmp_path) == LEADS and calls(simulator, "slack") == 1
    # Drained: every lookup and every analysis happened exactly once.
    assert held_at_stop < LEADS
    assert set(calls_by(simulator, "clearbit", "domain").values()) == {1}
    assert set(calls_by(simulator, "linkedin", "email").values()) == {1}
    assert calls(simulator, "clearbit") == calls(simulator, "linkedin") == LEADS
    assert calls(simulator, "openai") == 2 * LEADS + 1  # analysis + merge per lead, one summary
