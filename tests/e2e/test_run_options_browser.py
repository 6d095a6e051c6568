"""The Run panel's advanced start options in Chromium (issue 9): weight, priority and "defer
to off-peak" under an Advanced disclosure, checked against the server's bounds before a run
starts, and sent with the run: a run deferred outside the off-peak hours shows `deferred`,
and REST has its weight and priority."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot, start_local_app, stop_local_app

pytestmark = pytest.mark.browser


def closed_window() -> str:
    """Off-peak hours that do not contain now (UTC): an hour starting in two hours."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).hour
    return f"{start:02d}:00-{(start + 1) % 24:02d}:00"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    env = {"KLYNTOS_OFF_PEAK_HOURS": closed_window(), "KLYNTOS_OFF_PEAK_TZ": "UTC"}
    local = start_local_app(tmp_path_factory.mktemp("app"), env=env)
    yield local
    stop_local_app(local)


def test_a_run_starts_with_its_weight_priority_and_off_peak_deferral(
    app: LocalApp, page: Any
) -> None:
    page.goto("/")
    page.click('[data-testid="template-parallel-lead-enrichment"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    workflow_id = int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    advanced = page.locator('[data-testid="run-advanced"]')
    assert advanced.get_attribute("open") is None  # closed until asked for
    page.click('[data-testid="run-advanced-toggle"]')

    page.fill('[data-testid="run-weight"]', "500")  # past the server's bound
    page.wait_for_selector('[data-testid="run-weight-error"]:has-text("from 0.01 to 100")')
    assert page.locator('[data-testid="run-button"]').is_disabled()
    page.fill('[data-testid="run-weight"]', "2.5")
    page.fill('[data-testid="run-priority"]', "-5")
    page.check('[data-testid="run-off-peak"]')
    assert page.locator('[data-testid="run-weight-error"]').count() == 0
    summary = page.locator('[data-testid="run-advanced-summary"]').inner_text()
    assert summary.endswith("weight 2.5 · priority -5 · off-peak")
    screenshot(page, "run-advanced-options")

    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"][data-status="deferred"]')
    run = page.request.get(f"/api/workflows/{workflow_id}/runs/last/").json()["run"]
    shown = page.request.get(f"/api/runs/{run['id']}/").json()
    assert (shown["status"], shown["weight"], shown["priority"]) == ("deferred", 2.5, -5)
    assert shown["deferred_until"]  # when the off-peak hours begin
