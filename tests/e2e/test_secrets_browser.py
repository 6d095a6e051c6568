"""The secrets screen in real Chromium: a workflow reading a missing secret is flagged with
a link to add it; added there, the template validates and runs with it, and its value
appears in no page, API answer or export."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot
from tests.e2e.test_editing_browser import api

pytestmark = pytest.mark.browser

VALUE = "cb-typed-in-the-screen-3c9a71e0"


def simulator_stats(app: LocalApp) -> dict[str, Any]:
    request = urllib.request.Request(
        app.simulator_url + "/_sim/stats", headers={"X-Simulator-Token": app.simulator_token}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_add_a_secret_in_the_screen_then_the_template_validates_and_runs(
    app: LocalApp, page: Any
) -> None:
    created = api(page, "POST", "/api/templates/parallel-lead-enrichment/instantiate/", {})
    workflow = created["id"]
    # Start without the key: delete it on the screen.
    page.goto("/secrets/")
    row = page.locator('[data-testid="secret-row"][data-secret="CLEARBIT_API_KEY"]')
    assert created["name"] in row.inner_text()  # the workflows that read it
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator('[data-testid="delete-secret"]').click()
    # Still read by the workflow: listed as not set, with who reads it.
    missing = page.locator('[data-secret="CLEARBIT_API_KEY"][data-missing="true"]')
    missing.wait_for()
    assert created["name"] in missing.inner_text()

    # The editor flags the reference, with a link to add the secret.
    page.goto(f"/workflows/{workflow}/")
    page.wait_for_selector('[data-block-name="http_clearbit"][data-invalid="true"]')
    page.click('[data-action="validate"]')
    link = page.locator('[data-testid="validation-list"] [data-action="add-secret"]').first
    link.wait_for()
    assert link.get_attribute("data-secret") == "CLEARBIT_API_KEY"
    with page.context.expect_page() as opened:
        link.click()
    screen = opened.value
    screen.wait_for_selector('[data-testid="secrets-page"]')
    assert screen.locator('[data-testid="secret-name"]').input_value() == "CLEARBIT_API_KEY"
    screen.fill('[data-testid="secret-value"]', VALUE)
    screen.click('[data-testid="secret-save"]')
    screen.wait_for_selector('[data-testid="secrets-note"]:has-text("Added CLEARBIT_API_KEY")')
    added = screen.locator(
        '[data-testid="secret-row"][data-secret="CLEARBIT_API_KEY"]:not([data-missing])'
    )
    added.wait_for()
    assert screen.locator('[data-testid="secret-value"]').input_value() == ""
    screenshot(screen, "secrets-screen")
    pages = [screen.content()]

    # Replace works the same way (and shows nothing of either value).
    added.locator('[data-testid="replace-secret"]').click()
    screen.fill('[data-testid="replace-value"]', VALUE + "-2")
    screen.click('[data-testid="replace-save"]')
    screen.wait_for_selector('[data-testid="secrets-note"]:has-text("Replaced the value")')
    screen.fill('[data-testid="secret-name"]', "CLEARBIT_API_KEY")
    screen.fill('[data-testid="secret-value"]', VALUE)
    # The add form replaces a secret of the same name only once the user says so.
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    screen.once("dialog", accept)
    screen.click('[data-testid="secret-save"]')  # back to the first value
    screen.wait_for_selector('[data-testid="secrets-note"]:has-text("Replaced CLEARBIT_API_KEY")')
    assert asked == [
        "A secret CLEARBIT_API_KEY exists: replace its value? Workflows reading it will use the new value."
    ]
    pages.append(screen.content())
    screen.close()

    # Back in the editor: valid now, and it runs with the key.
    page.bring_to_front()
    page.click('[data-action="validate"]')
    page.wait_for_selector('[data-testid="save-status"]:has-text("Valid: ready to run")')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    before = len(simulator_stats(app)["received"])
    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")', timeout=90_000)
    received = simulator_stats(app)["received"][before:]
    sent = {r["authorization"] for r in received if r["endpoint"] == "clearbit"}
    assert sent == {f"Bearer {VALUE}"}
    pages.append(page.content())

    run_id = api(page, "GET", f"/api/workflows/{workflow}/runs/")["results"][0]["id"]
    answers = [
        json.dumps(api(page, "GET", path))
        for path in (
            "/api/secrets/",
            "/api/workflows/",
            f"/api/workflows/{workflow}/",
            f"/api/workflows/{workflow}/runs/",
            f"/api/runs/{run_id}/",
            f"/api/runs/{run_id}/items/",
            f"/api/workflows/{workflow}/export/",
        )
    ]
    for text in pages + answers:
        assert VALUE not in text
    assert re.search(r"CLEARBIT_API_KEY", answers[0])
