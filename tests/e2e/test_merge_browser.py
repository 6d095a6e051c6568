"""Saving over a version saved elsewhere in real Chromium: the editor merges the other
changes into its own and saves; a conflict (the same field changed on both sides) is
listed, the user chooses, and the server holds the chosen values."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, fill_field, save_draft, screenshot, select_block
from tests.e2e.test_editing_browser import api

pytestmark = pytest.mark.browser
TEMPLATE = "parallel-lead-enrichment"


def config(graph: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in graph["blocks"] if b["id"] == block_id)["config"]  # type: ignore[no-any-return]


def save_elsewhere(page: Any, workflow_id: int, change: Callable[[dict[str, Any]], None]) -> int:
    """Another client's save through the REST API, on the server's current version."""
    workflow = api(page, "GET", f"/api/workflows/{workflow_id}/")
    change(workflow["graph"])
    body = {"graph": workflow["graph"], "base_version": workflow["version"]}
    return int(api(page, "PUT", f"/api/workflows/{workflow_id}/", body)["version"])


def test_a_stale_save_merges_and_a_conflict_is_chosen(app: LocalApp, page: Any) -> None:
    page.goto("/")
    page.click(f'[data-testid="template-{TEMPLATE}"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector('[data-block-name="agent_summary"]')
    workflow_id = int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]

    # Edited here and, meanwhile, another block elsewhere: merged without a question.
    fill_field(select_block(page, "agent_summary"), "user_prompt", "Mine: <loop.count> leads.")
    assert (
        save_elsewhere(page, workflow_id, lambda g: config(g, "slack").update(text="Theirs")) == 2
    )
    status = save_draft(page, 3)
    assert "Merged 1 change saved elsewhere (block 'slack' config)" in status, status
    graph = api(page, "GET", f"/api/workflows/{workflow_id}/")["graph"]
    assert config(graph, "agent_summary")["user_prompt"] == "Mine: <loop.count> leads."
    assert config(graph, "slack")["text"] == "Theirs"
    assert page.locator('[data-testid="dirty-indicator"]').count() == 0
    assert select_block(page, "slack").locator('[data-field="text"]').input_value() == "Theirs"

    # The same field changed on both sides (and another one elsewhere): the user chooses.
    fill_field(select_block(page, "agent_summary"), "user_prompt", "Mine again.")

    def theirs(graph: dict[str, Any]) -> None:
        config(graph, "agent_summary")["user_prompt"] = "Theirs again."
        config(graph, "slack_failures")["channel"] = "#theirs"

    assert save_elsewhere(page, workflow_id, theirs) == 4
    page.click('[data-testid="save-button"]')
    panel = page.locator('[data-testid="merge-panel"]')
    panel.wait_for()
    assert "Not saved" in page.locator('[data-testid="save-status"]').inner_text()
    row = panel.locator('[data-key="block:agent_summary:config.user_prompt"]')
    assert "block 'agent_summary' · config.user_prompt" in row.inner_text()
    assert "Mine again." in row.inner_text() and "Theirs again." in row.inner_text()
    assert panel.locator('[data-testid="merge-conflict"]').count() == 1
    assert panel.locator('[data-action="save-merge"]').is_disabled()
    screenshot(page, "merge-conflict")
    row.locator('[data-action="take-theirs"]').check()
    panel.locator('[data-action="save-merge"]').click()
    page.wait_for_function(
        """() => /^(Saved v|Not saved)/.test(
                   document.querySelector('[data-testid="save-status"]')?.innerText ?? "")"""
    )
    status = page.locator('[data-testid="save-status"]').inner_text()
    # Theirs chosen, the merge is their graph: nothing new to save, v4 stays the draft.
    assert status.startswith("Saved v4 "), status
    assert "1 conflict resolved as chosen" in status, status
    assert page.locator('[data-testid="merge-panel"]').count() == 0
    graph = api(page, "GET", f"/api/workflows/{workflow_id}/")["graph"]
    assert config(graph, "agent_summary")["user_prompt"] == "Theirs again."
    assert config(graph, "slack_failures")["channel"] == "#theirs"
    assert config(graph, "slack")["text"] == "Theirs"
    prompt = select_block(page, "agent_summary").locator('[data-field="user_prompt"]')
    assert prompt.input_value() == "Theirs again."

    # The merge is one undo step: back to what was here before it.
    page.click('[data-action="undo"]')
    page.wait_for_function(
        """() => document.querySelector('[data-testid="config-panel"] [data-field="user_prompt"]')
                   ?.value === "Mine again." """
    )
