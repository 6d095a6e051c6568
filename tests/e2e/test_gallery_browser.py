"""Every pattern template in real Chromium under `make run`'s sandbox: listed in the gallery
with its pattern, created from it, and run green on its sample from the Run panel."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from builder import gallery
from tests.e2e.conftest import LocalApp, screenshot

pytestmark = pytest.mark.browser

# The brief's use cases (issue 11) and issue 10's extra patterns; the lead and multi-API
# templates have browser tests of their own.
SLUGS = ["nested-fan-out", "map-reduce"]


@pytest.mark.parametrize("slug", SLUGS)
def test_the_template_runs_green_on_its_sample_from_the_gallery(
    app: LocalApp, page: Any, slug: str
) -> None:
    template = gallery.template_get(slug)
    page.goto("/")
    card = page.locator(f'[data-testid="template-pattern-{slug}"]')
    assert template["pattern"][:40] in card.inner_text()
    page.click(f'[data-testid="template-{slug}"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    names = [b["name"] for b in template["graph"]["blocks"]]
    for name in names:
        page.wait_for_selector(f'[data-block-name="{name}"]')
    sample = json.loads(page.locator('[data-testid="run-input"]').input_value())
    assert sample == template["sample"]

    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")', timeout=90_000)
    for name in names:
        block = page.locator(f'[data-block-name="{name}"]')
        assert block.get_attribute("data-status") == "succeeded", name
    screenshot(page, f"gallery-{slug}")
