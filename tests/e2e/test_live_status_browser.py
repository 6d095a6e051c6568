"""Two tabs on one workflow in real Chromium: a publish or a save in one reaches the other's
header within seconds over the workflow socket (`workflow.changed`), and the other tab keeps
its unsaved edits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, fill_field, screenshot, select_block
from tests.e2e.test_editing_browser import api, open_editor
from tests.e2e.test_versions_browser import from_template, save, wait_for_text

pytestmark = pytest.mark.browser

SECONDS = 5_000  # ms: "within a few seconds"


def wait_within(page: Any, testid: str, text: str) -> None:
    page.wait_for_function(
        "([id, text]) => document.querySelector(`[data-testid=${id}]`)?.innerText === text",
        arg=[testid, text],
        timeout=SECONDS,
    )


def test_a_publish_or_a_save_in_one_tab_reaches_the_other_s_header(
    app: LocalApp, page: Any
) -> None:
    a = page
    workflow_id = from_template(a)
    b = a.context.new_page()
    b.set_default_timeout(20_000)
    open_editor(b, workflow_id)
    wait_for_text(b, "live-status", "v1 live")

    # A saves v2 and publishes it: B (editing v1) hears both.
    fill_field(select_block(a, "agent_summary"), "user_prompt", "Summarise <loop.count> leads.")
    save(a, 2)
    wait_within(b, "live-status", "v1 live · draft v2 differs")
    wait_within(b, "saved-elsewhere", "v2 saved elsewhere — your next save merges")
    a.click('[data-action="publish"]')
    wait_for_text(a, "live-status", "v2 live")
    wait_within(b, "live-status", "v2 live")
    assert b.locator('[data-testid="workflow-version"]').inner_text() == "v1"  # still edits v1

    # A has an unsaved edit when another tab (B) saves v3: A says so and keeps its edit.
    fill_field(select_block(a, "agent_summary"), "user_prompt", "Unsaved in A.")
    graph = api(b, "GET", f"/api/workflows/{workflow_id}/")["graph"]
    for block in graph["blocks"]:
        if block["name"] == "agent_summary":
            block["config"]["user_prompt"] = "Saved in B."
    assert (
        api(b, "PUT", f"/api/workflows/{workflow_id}/", {"graph": graph, "base_version": 2})[
            "version"
        ]
        == 3
    )
    wait_within(a, "live-status", "v2 live · draft v3 differs")
    wait_within(a, "saved-elsewhere", "v3 saved elsewhere — your next save merges")
    assert a.locator('[data-testid="dirty-indicator"]').count() == 1
    assert a.locator('[data-testid="workflow-version"]').inner_text() == "v2"
    prompt = a.locator('[data-testid="config-panel"] [data-field="user_prompt"]')
    assert prompt.input_value() == "Unsaved in A."
    wait_within(b, "live-status", "v2 live · draft v3 differs")
    screenshot(a, "live-status-saved-elsewhere")
    b.close()
