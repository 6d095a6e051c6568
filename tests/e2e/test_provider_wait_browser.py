"""In Chromium (issue 9 item 1): an item waiting for its provider says so in the item's
steps — the lead template under `make run` with Clearbit capped at 1 and held."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot, start_local_app, stop_local_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    local = start_local_app(
        tmp_path_factory.mktemp("app"),
        env={"KLYNTOS_PROVIDER_LIMITS": "api.clearbit.com=concurrency:1;start:1"},
    )
    yield local
    stop_local_app(local)


def control(app: LocalApp, path: str, **body: Any) -> None:
    request = urllib.request.Request(
        app.simulator_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Simulator-Token": app.simulator_token},
    )
    urllib.request.urlopen(request, timeout=5).read()  # noqa: S310 -- the local simulator


def leads(n: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"W{i}",
            "name": f"Waiting Person {i}",
            "company": f"Company {i}",
            "title": "CTO",
            "email": f"wait{i}@company{i}.example",
            "domain": f"company{i}.example",
            "message": "hello",
        }
        for i in range(n)
    ]


def test_an_item_waiting_for_its_provider_shows_why(app: LocalApp, page: Any) -> None:
    control(app, "/_sim/config", hold=[{"endpoint": "clearbit"}])
    try:
        page.goto("/")
        page.click('[data-testid="template-parallel-lead-enrichment"]')
        page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
        page.wait_for_selector('[data-block-name="agent_merge"]')
        page.wait_for_function(
            "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
        )
        page.fill('[data-testid="run-input"]', json.dumps({"leads": leads(3)}))
        page.click('[data-testid="run-button"]')
        rows = page.locator('[data-testid="item-row"]')
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"item-row\"]').length === 3"
        )
        # One item's Clearbit call is in flight (held); the other two wait for the cap.
        waiting = page.locator(
            '[data-testid="item-step"][data-block-id="http_clearbit"]:has(.kr-s-waiting)'
        )
        found = False
        for attempt in range(30):
            rows.nth(attempt % 3).click()
            page.locator('[data-testid="item-detail"]').wait_for()
            page.wait_for_selector('[data-testid="item-step"]')
            page.wait_for_timeout(300)
            if waiting.count():
                found = True
                break
        assert found, "no item showed its Clearbit step waiting"
        assert "waiting for api.clearbit.com: concurrency" in waiting.first.inner_text()
        screenshot(page, "provider-waiting")
    finally:
        control(app, "/_sim/release")
    page.wait_for_selector('[data-testid="progress"]:has-text("3/3")', timeout=60_000)
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")')
    # The timeline draws the provider's limit the run met.
    page.wait_for_selector('[data-testid="timeline-limit"]', state="attached", timeout=20_000)
    legend = page.locator('[data-testid="timeline-limits"]').inner_text()
    assert legend == "api.clearbit.com limit 1"
    page.locator('[data-testid="timeline"]').scroll_into_view_if_needed()
    screenshot(page, "provider-limit-timeline")
