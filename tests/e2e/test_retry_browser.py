"""Retry failed items from the run panel in real Chromium: the lead template's run with
Clearbit failing for three leads ends partially succeeded; "Retry 3 failed" starts a linked
run that calls Clearbit only for those three and ends succeeded; History shows the link."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot
from tests.e2e.test_editor_browser import configure_simulator, open_template

pytestmark = pytest.mark.browser


def test_retry_failed_from_the_run_panel(app: LocalApp, page: Any) -> None:
    open_template(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    leads = json.loads(page.locator('[data-testid="run-input"]').input_value())["leads"]
    failing = [lead["domain"] for lead in leads[:3]]
    configure_simulator(
        app,
        failures=[
            {"endpoint": "clearbit", "match": {"domain": domain}, "status": 404}
            for domain in failing
        ],
    )
    try:
        page.click('[data-testid="run-button"]')
        page.wait_for_selector(
            '[data-testid="run-status"][data-status="partially_succeeded"]', timeout=90_000
        )
    finally:
        configure_simulator(app, failures=[])
    first = page.locator('[data-testid="run-id"]').get_attribute("data-run-id")

    retry = page.locator('[data-testid="retry-failed-button"]')
    assert retry.inner_text() == "Retry 3 failed"
    retry.click()
    page.wait_for_function(
        "(first) => { const el = document.querySelector('[data-testid=run-id]');"
        " return el && el.dataset.runId !== first; }",
        arg=first,
    )
    page.wait_for_selector('[data-testid="run-status"][data-status="succeeded"]', timeout=90_000)
    assert page.locator('[data-testid="run-id"]').inner_text().endswith("· retry")
    assert page.locator('[data-testid="retry-failed-button"]').count() == 0
    # Its cost line counts its own calls (3 merges and the batch summary), and says apart
    # what it reused from the first run, not spent again.
    reused = page.locator('[data-testid="cost-reused"]')
    reused.wait_for(timeout=20_000)
    assert reused.inner_text().startswith(f"reused {len(leads) - 3} items from the retried run: ")
    assert reused.inner_text().endswith("not spent again")
    assert page.locator('[data-testid="cost-tokens"]').inner_text().endswith(" in 4 LLM calls")
    screenshot(page, "retry-failed")

    retried = page.request.get(
        f"/api/runs/{page.locator('[data-testid=run-id]').get_attribute('data-run-id')}/"
    ).json()
    assert retried["retry_of"] == first and retried["progress"]["succeeded"] == len(leads)
    first_summary = page.request.get(f"/api/runs/{first}/summary/").json()["summary"]
    assert retried["summary"]["llm_calls"] == 4
    assert retried["summary"]["reused"]["llm_calls"] == first_summary["llm_calls"] - 1

    page.click('[data-testid="tab-history"]')
    page.locator('[data-testid="run-retry-of"]').first.wait_for()
    rows = page.locator('[data-testid="history-row"]')
    assert "retried by" in rows.filter(has=page.locator(f'[title="{first}"]')).inner_text()
