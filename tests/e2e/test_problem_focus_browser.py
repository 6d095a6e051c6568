"""A validation problem's link in real Chromium: it selects the block and puts the caret in
the named field of the config panel (scrolled into view), not just the block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot
from tests.e2e.test_editing_browser import api, open_editor

pytestmark = pytest.mark.browser

TEMPLATE = Path(__file__).resolve().parents[2] / "builder/gallery/parallel-lead-enrichment.json"


def test_a_problem_link_focuses_its_field(app: LocalApp, page: Any) -> None:
    page.goto("/")
    created = api(page, "POST", "/api/templates/parallel-lead-enrichment/instantiate/", {})
    graph = json.loads(TEMPLATE.read_text())["graph"]
    for block in graph["blocks"]:
        if block["id"] == "slack":
            block["config"]["text"] = "Done: <no_such_block.value>"
    saved = api(
        page, "PUT", f"/api/workflows/{created['id']}/", {"graph": graph, "base_version": 1}
    )
    errors = saved["validation"]["errors"]
    assert [(e["block_id"], e["field"]) for e in errors] == [("slack", "text")], errors

    open_editor(page, created["id"])
    problem = page.locator('[data-testid="validation-list"] li[data-error-block="slack"] button')
    if not problem.count():
        page.locator('[data-testid="validation-summary"]').click()
    problem.first.click()
    page.locator('[data-testid="config-panel"][data-selected-block="slack"]').wait_for()
    page.wait_for_function(
        "() => document.activeElement?.getAttribute('data-field') === 'text'"
        " || document.activeElement?.closest('[data-field-wrap]')?.getAttribute('data-field-wrap') === 'text'"
    )
    in_view = page.evaluate(
        """() => {
          const frame = document.querySelector('[data-testid="config-panel"] [data-field-wrap="text"]');
          const panel = document.querySelector('[data-testid="config-panel"]').getBoundingClientRect();
          const r = frame.getBoundingClientRect();
          return r.bottom > panel.top && r.top < panel.bottom;
        }"""
    )
    assert in_view
    screenshot(page, "problem-link-focus")
