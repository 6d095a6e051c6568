"""The mini map in real Chromium: it can be put away when it covers the blocks one works on,
and the choice holds across a reload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import LocalApp
from tests.e2e.test_editing_browser import api, open_editor

pytestmark = pytest.mark.browser

MINIMAP = ".react-flow__minimap"
TOGGLE = '[data-action="toggle-minimap"]'


def test_the_mini_map_can_be_hidden_and_stays_hidden_after_a_reload(
    app: LocalApp, page: Any
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/")
    created = api(page, "POST", "/api/templates/parallel-lead-enrichment/instantiate/", {})
    open_editor(page, created["id"])
    page.locator(MINIMAP).wait_for()
    toggle = page.locator(TOGGLE)
    assert toggle.get_attribute("aria-pressed") == "true"

    toggle.click()
    page.locator(MINIMAP).wait_for(state="detached")
    assert toggle.get_attribute("aria-label") == "Show the mini map"

    page.reload()
    page.wait_for_selector('[data-testid="canvas"] .react-flow__pane')
    assert page.locator(MINIMAP).count() == 0
    page.locator(TOGGLE).click()
    page.locator(MINIMAP).wait_for()
    assert page.locator(TOGGLE).get_attribute("aria-pressed") == "true"
