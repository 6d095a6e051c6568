"""The editor's live view at scale, in real Chromium (issue 6): runs from any trigger show up
in an open editor, the item table stays bounded, the canvas tells the truth about partly
failed and cancelled runs. Figures (delays, DOM node counts) are printed for the report."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot
from tests.e2e.test_editor_browser import open_template

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"


def post_json(url: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def lead(i: int, name: str | None = None) -> dict[str, str]:
    return {
        "id": f"l-{i}",
        "name": name or f"Lead {i}",
        "company": f"Company {i}",
        "title": "CTO",
        "email": f"lead{i}@c{i}.example",
        "domain": f"c{i}.example",
        "message": "Interested in a demo",
    }


def test_a_webhook_run_shows_in_the_idle_editor_within_2_s(app: LocalApp, page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    workflow_id = open_template(page)
    # Idle: the editor is open, connected, and nobody touches it.
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(  e => e.name.includes('/runs/last/'))"
    )
    page.wait_for_timeout(500)
    hook = page.request.get(f"/api/workflows/{workflow_id}/").json()["webhook_url"]

    posted = time.monotonic()
    answer = post_json(hook, {"leads": [lead(0, HOSTILE), lead(1)]})
    run_id = answer["run_id"]
    page.wait_for_selector(f'[data-testid="run-id"][data-run-id="{run_id}"]', timeout=2_000)
    delay = time.monotonic() - posted
    print(json.dumps({"metric": "webhook_run_shown_seconds", "value": round(delay, 3)}))
    assert delay < 2.0
    notice = page.locator('[data-testid="run-notice"]')
    assert notice.get_attribute("data-trigger") == "webhook"
    assert "started by the webhook" in notice.inner_text()

    page.click('[data-testid="tab-progress"]')
    row = page.locator('[data-testid="item-row"][data-item-key="loop[0]"]')
    row.wait_for(timeout=30_000)
    page.wait_for_function(
        f"() => document.querySelector('[data-item-key=\"loop[0]\"]')?.textContent.includes({json.dumps(HOSTILE)})"
    )
    assert HOSTILE in row.inner_text()
    assert page.locator('[data-testid="item-table"] img').count() == 0
    page.wait_for_selector('[data-testid="run-status"][data-status="succeeded"]', timeout=60_000)
    # The History lists it, live.
    page.click('[data-testid="tab-history"]')
    page.wait_for_selector(f'[data-testid="history-row"][data-run-id="{run_id}"]')
    assert (
        "webhook"
        in page.locator(f'[data-testid="history-row"][data-run-id="{run_id}"]').inner_text()
    )
    screenshot(page, "scale-webhook-run")

    # After a reload, the last run is shown, never "No run yet".
    page.reload()
    page.wait_for_selector(f'[data-testid="run-id"][data-run-id="{run_id}"]')
    assert page.locator("text=No run yet").count() == 0
    assert page.locator('[data-testid="run-status"]').get_attribute("data-status") == "succeeded"
    assert page.locator('[data-block-name="loop"][data-status="succeeded"]').count() == 1
    assert dialogs == []
