"""In Chromium (issue 9 item 3): a manual breaker pauses the run — the run header shows
`paused` with the provider and the reason — until the Resume button; then the run ends
`succeeded` with no item failed. The lead template under `make run`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot, start_local_app, stop_local_app
from tests.e2e.test_provider_wait_browser import control, leads

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    local = start_local_app(
        tmp_path_factory.mktemp("app"),
        env={"KLYNTOS_BREAKER": "mode:manual;min_calls:3;window:5;failure_rate:0.5"},
    )
    yield local
    stop_local_app(local)


def test_a_paused_run_shows_its_provider_and_resumes_with_the_button(
    app: LocalApp, page: Any
) -> None:
    control(app, "/_sim/config", failures=[{"endpoint": "clearbit", "status": 503, "times": 5}])
    page.goto("/")
    page.click('[data-testid="template-parallel-lead-enrichment"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector('[data-block-name="agent_merge"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    page.fill('[data-testid="run-input"]', json.dumps({"leads": leads(6)}))
    page.click('[data-testid="run-button"]')

    paused = page.locator('[data-testid="paused-provider"]')
    paused.wait_for(timeout=30_000)
    assert paused.get_attribute("data-provider") == "api.clearbit.com"
    assert paused.get_attribute("data-mode") == "manual"
    reason = page.locator('[data-testid="paused-reason"]').inner_text()
    assert re.fullmatch(r"api\.clearbit\.com: \d+ of \d+ calls failed · waits for Resume", reason)
    assert page.locator('[data-testid="run-status"]').inner_text() == "running"
    page.wait_for_timeout(1000)  # a manual breaker has no cool-down: still paused
    assert paused.count() == 1
    screenshot(page, "provider-breaker-paused")

    page.click('[data-testid="resume-provider-button"]')
    page.wait_for_selector('[data-testid="run-paused"]', state="detached", timeout=20_000)
    page.wait_for_selector('[data-testid="progress"]:has-text("6/6")', timeout=60_000)
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")')
    assert page.locator('[data-testid="progress-failed"]').count() == 0
    # The timeline draws the pause as a band from the trip to the Resume.
    page.wait_for_selector('[data-testid="timeline-pause"]', state="attached", timeout=20_000)
    band = page.locator('[data-testid="timeline-pause"]').first
    assert band.get_attribute("class") == "kr-tl-paused kr-tl-open"
    assert "api.clearbit.com: breaker open, no call started from" in band.text_content()
    assert page.locator('[data-testid="timeline-paused"]').inner_text() == (
        "api.clearbit.com breaker open 1×"
    )
    page.locator('[data-testid="timeline"]').scroll_into_view_if_needed()
    screenshot(page, "provider-breaker-timeline")
