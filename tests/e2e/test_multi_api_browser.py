"""The multi-API aggregation template in real Chromium under `make run`'s sandbox: created
from the gallery, run green on its sample from the Run panel, then called the way its README
entry says (`POST /hooks/<token>` with `Prefer: wait=10`) for the combined answer."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from bench.multi_api import SOURCES, expected_body
from tests.e2e.conftest import LocalApp, sample_input, screenshot

pytestmark = pytest.mark.browser
SLUG = "multi-api-aggregation"


def test_the_template_runs_green_from_the_gallery_and_answers_a_waiting_call(
    app: LocalApp, page: Any
) -> None:
    page.goto("/")
    assert "Fan-out / fan-in" in page.inner_text(f'[data-testid="template-pattern-{SLUG}"]')
    page.click(f'[data-testid="template-{SLUG}"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    page.wait_for_selector('[data-block-name="response"]')
    workflow_id = int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    sample = sample_input(page)
    assert set(sample) == {"city", "topic", "symbol", "base", "country"}

    page.click('[data-testid="run-button"]')
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")', timeout=60_000)
    for name in (*SOURCES, "combine", "response"):
        assert page.locator(f'[data-block-name="{name}"][data-status="succeeded"]').count() == 1
    screenshot(page, "multi-api-run")

    workflow = page.request.get(f"/api/workflows/{workflow_id}/").json()
    request = urllib.request.Request(
        workflow["webhook_url"],
        data=json.dumps(sample).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Prefer": "wait=10"},
    )
    with urllib.request.urlopen(request, timeout=20) as answer:  # noqa: S310 -- the local app
        assert answer.status == 200
        assert json.loads(answer.read()) == expected_body(sample)
