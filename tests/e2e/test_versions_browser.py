"""Drafts, publishing and versions in real Chromium: Save writes a draft, Publish makes it
what the webhook runs (refused with the problems listed when the draft is not valid), and
the Versions panel diffs two versions and restores one as the draft."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest import LocalApp, fill_field, save_draft, screenshot, select_block

pytestmark = pytest.mark.browser
TEMPLATE = "parallel-lead-enrichment"


def from_template(page: Any) -> int:
    page.goto("/")
    page.click(f'[data-testid="template-{TEMPLATE}"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector('[data-block-name="agent_summary"]')
    return int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]


def set_summary_prompt(page: Any, text: str) -> None:
    fill_field(select_block(page, "agent_summary"), "user_prompt", text)


def save(page: Any, version: int) -> None:
    save_draft(page, version)


def wait_for_text(page: Any, testid: str, text: str) -> None:
    """Wait until a lasting element says `text` (status notices come and go)."""
    page.wait_for_function(
        "([id, text]) => document.querySelector(`[data-testid=${id}]`)?.innerText === text",
        arg=[testid, text],
    )


def live_status(page: Any) -> str:
    return str(page.locator('[data-testid="live-status"]').inner_text())


def test_a_draft_never_changes_what_the_webhook_runs(app: LocalApp, page: Any) -> None:
    workflow_id = from_template(page)
    assert live_status(page) == "v1 live"

    set_summary_prompt(page, "Summarise <loop.count> leads in two lines.")
    save(page, 2)
    assert live_status(page) == "v1 live · draft v2 differs"
    page.click('[data-action="publish"]')
    wait_for_text(page, "live-status", "v2 live")

    set_summary_prompt(page, "Summarise <nowhere.text>")
    save(page, 3)
    wait_for_text(page, "live-status", "v2 live · draft v3 differs")

    workflow = page.request.get(f"/api/workflows/{workflow_id}/").json()
    sample = next(t for t in page.request.get("/api/templates/").json() if t["slug"] == TEMPLATE)
    hook = page.request.post(urlparse(workflow["webhook_url"]).path, data=sample["sample"])
    assert hook.status == 202, hook.text()
    run = page.request.get(f"/api/runs/{hook.json()['run_id']}/").json()
    assert run["workflow_version"] == 2 and run["draft"] is False

    page.click('[data-action="publish"]')
    status = page.locator('[data-testid="save-status"]')
    status.filter(has_text="Not published").wait_for()
    assert "problem" in status.inner_text()
    assert "nowhere" in page.locator('[data-testid="status-bar"]').inner_text()
    assert live_status(page) == "v2 live · draft v3 differs"
    assert page.request.get(f"/api/workflows/{workflow_id}/").json()["published_version"] == 2
    screenshot(page, "versions-refused-publish")


def test_versions_diff_and_restore(app: LocalApp, page: Any) -> None:
    workflow_id = from_template(page)
    first = page.request.get(f"/api/workflows/{workflow_id}/").json()["graph"]
    set_summary_prompt(page, "Second: <loop.count> leads.")
    save(page, 2)
    set_summary_prompt(page, "Third: <loop.count> leads.")
    save(page, 3)

    page.click('[data-action="versions"]')
    panel = page.locator('[data-testid="versions-panel"]')
    panel.locator('[data-testid="version-row"]').nth(2).wait_for()
    assert panel.locator('[data-testid="version-row"]').count() == 3
    panel.get_by_label("From version").select_option("1")
    panel.get_by_label("To version").select_option("3")
    panel.locator('[data-action="compare-versions"]').click()
    changed = panel.locator('[data-testid="diff-field"][data-path="config.user_prompt"]')
    changed.wait_for()
    assert "Third: <loop.count> leads." in changed.inner_text()
    assert panel.locator('[data-testid="diff-block-changed"]').count() == 1
    screenshot(page, "versions-diff")

    page.once("dialog", lambda dialog: dialog.accept())
    panel.locator(
        '[data-testid="version-row"][data-version="1"] [data-action="restore-version"]'
    ).click()
    wait_for_text(page, "workflow-version", "v4")  # the header, once the editor reloaded
    restored = page.request.get(f"/api/workflows/{workflow_id}/").json()
    assert restored["version"] == 4 and restored["graph"] == first
    assert restored["published_version"] == 1 and restored["draft_differs"] is False
    prompt = select_block(page, "agent_summary").locator('[data-field="user_prompt"]')
    summary = next(b for b in first["blocks"] if b["id"] == "agent_summary")
    assert prompt.input_value() == summary["config"]["user_prompt"]
