"""Validation warnings in real Chromium: a list that grows with the batch in a prompt or a
Slack text is listed as a warning (the workflow saves and runs), apart from the errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot
from tests.e2e.test_editing_browser import api, open_editor, save
from tests.e2e.test_editor_browser import node

pytestmark = pytest.mark.browser

TEMPLATE = Path(__file__).resolve().parents[2] / "builder/gallery/parallel-lead-enrichment.json"


def brief_graph() -> dict[str, Any]:
    """The shipped template with the brief's summary prompt and the leads in the Slack text."""
    graph = json.loads(TEMPLATE.read_text())["graph"]
    for block in graph["blocks"]:
        if block["id"] == "agent_summary":
            block["config"]["user_prompt"] = "Processed <loop.count> leads\nResults: <loop.results>"
        if block["id"] == "slack":
            block["config"]["text"] += "\nAll: <webhook.body.leads>"
    return graph


def test_growing_lists_are_listed_as_warnings_and_the_workflow_still_saves(
    app: LocalApp, page: Any
) -> None:
    page.goto("/")
    created = api(page, "POST", "/api/templates/parallel-lead-enrichment/instantiate/", {})
    assert created["validation"]["warnings"] == []
    saved = api(
        page, "PUT", f"/api/workflows/{created['id']}/", {"graph": brief_graph(), "base_version": 1}
    )
    assert saved["validation"]["ok"] is True and len(saved["validation"]["warnings"]) == 2

    open_editor(page, created["id"])
    summary = page.locator('[data-testid="validation-summary"]')
    summary.wait_for()
    assert summary.inner_text() == "2 warnings"
    summary.click()
    listed = page.locator('[data-testid="validation-list"] li.warning')
    assert listed.count() == 2
    assert {listed.nth(i).get_attribute("data-warning-block") for i in range(2)} == {
        "agent_summary",
        "slack",
    }
    assert "<loop.results> holds a list" in listed.first.inner_text()
    assert "<loop.top_leads>" in listed.first.inner_text()
    assert page.locator('[data-testid="validation-list"] li[data-error-block]').count() == 0

    node(page, "agent_summary").click()
    warning = page.locator('[data-field-warning="user_prompt"]')
    warning.wait_for()
    assert "grows with the batch" in warning.inner_text()
    assert page.locator('[data-field-error="user_prompt"]').count() == 0

    assert save(page).endswith("· valid · 2 warnings (runs anyway)")
    screenshot(page, "validation-warnings")
