"""Every pattern template in real Chromium under `make run`'s sandbox: listed in the gallery
with its pattern, created from it, and run green on its sample from the Run panel."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from builder import gallery
from tests.e2e.conftest import LocalApp, sample_input, screenshot

pytestmark = pytest.mark.browser

# The brief's use cases (issue 11) and issue 10's extra patterns; the lead and multi-API
# templates have browser tests of their own.
SLUGS = [
    "nested-fan-out",
    "map-reduce",
    "personalised-emails",
    "contract-analysis",
    "image-batch",
    "support-triage",
    "web-summariser",
]


@pytest.mark.parametrize("slug", SLUGS)
def test_the_template_runs_green_on_its_sample_from_the_gallery(
    app: LocalApp, page: Any, slug: str
) -> None:
    template = gallery.template_get(slug)
    page.goto("/")
    card = page.locator(f'[data-testid="template-pattern-{slug}"]')
    assert template["pattern"][:40] in card.inner_text()
    picture = page.locator(f'[data-testid="template-picture-{slug}"]')
    drawn = picture.locator("[data-picture-block]")
    assert drawn.count() == len(template["graph"]["blocks"])
    page.click(f'[data-testid="template-{slug}"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    names = [b["name"] for b in template["graph"]["blocks"]]
    for name in names:
        page.wait_for_selector(f'[data-block-name="{name}"]')
    sample = sample_input(page)
    assert sample == template["sample"]

    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")', timeout=90_000)
    for name in names:
        block = page.locator(f'[data-block-name="{name}"]')
        assert block.get_attribute("data-status") == "succeeded", name
    screenshot(page, f"gallery-{slug}")


def test_the_gallery_shows_every_template_with_a_picture(app: LocalApp, page: Any) -> None:
    page.goto("/")
    for slug in gallery.templates():
        page.wait_for_selector(f'[data-testid="template-picture-{slug}"] rect')
    screenshot(page, "gallery")


def test_the_emails_template_rows_export_as_csv_from_the_admin(app: LocalApp, page: Any) -> None:
    """The README's way to the emails: run the template, then Export CSV in the admin."""
    slug = "personalised-emails"
    page.goto("/")
    page.click(f'[data-testid="template-{slug}"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector('[data-block-name="store_email"]')
    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")', timeout=90_000)
    page.goto("/admin/leads/personalisedemail/")
    with page.expect_download() as download:
        page.click("#export-csv")
    text = download.value.path().read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    sample = gallery.template_get(slug)["sample"]
    assert {r["recipient_id"] for r in rows} >= {r["id"] for r in sample["recipients"]}
    assert all(r["subject"] and r["body"] for r in rows)
