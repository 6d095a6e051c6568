"""A schedule trigger in real Chromium under `make run`: the panel shows when it fires next,
and once published it starts one run per tick from the web process's own scheduler."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import (
    LocalApp,
    save_draft,
    screenshot,
    select_block,
    start_local_app,
    stop_local_app,
)
from tests.e2e.test_editor_browser import drop_block, new_workflow

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    # Seconds-level schedules are allowed here so the test sees several ticks quickly.
    local = start_local_app(
        tmp_path_factory.mktemp("app"),
        env={"KLYNTOS_SCHEDULE_MIN_SECONDS": "1", "KLYNTOS_SCHEDULER_POLL_SECONDS": "0.2"},
    )
    yield local
    stop_local_app(local)


def test_a_published_schedule_fires_once_per_tick_under_make_run(app: LocalApp, page: Any) -> None:
    workflow_id = new_workflow(page, "Every two seconds")
    drop_block(page, "schedule", 120, 200)
    cron = select_block(page, "schedule_1").locator('[data-field="cron"]')
    cron.fill("0 9 * * 1-5")
    preview = page.locator('[data-testid="schedule-preview"]')
    preview.locator('[data-testid="schedule-next"]').nth(4).wait_for()
    assert "09:00" in preview.inner_text()
    cron.fill("0 9 * *")
    preview.locator('[role="alert"]').filter(has_text="five fields").wait_for()

    cron.fill("*/2 * * * * *")
    preview.locator('[data-testid="schedule-next"]').nth(4).wait_for()
    screenshot(page, "schedule-panel")
    save_draft(page)
    runs_url = f"/api/workflows/{workflow_id}/runs/"
    page.click('[data-action="publish"]')
    page.wait_for_selector('[data-testid="save-status"]:has-text("Published")')

    deadline = time.monotonic() + 30
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [r for r in page.request.get(runs_url).json()["results"] if r["finished_at"]]
        if len(runs) >= 3:
            break
        time.sleep(0.5)
    assert len(runs) >= 3, runs
    assert {r["trigger"] for r in runs} == {"schedule"}
    assert {r["status"] for r in runs} == {"succeeded"}
    ticks = sorted(
        page.request.get(f"/api/runs/{r['id']}/").json()["outputs"]["schedule_1"]["scheduled_for"]
        for r in runs
    )
    assert len(set(ticks)) == len(ticks), ticks  # one run per tick
