"""Acceptance in Chromium (issue 11 item 3, issue 9 item 7): the lead template on 100 leads,
run from the editor under `make run` (SQLite) with prices configured, shows the server's
cost line — wall, sequential, speedup, tokens, dollars — each item's dollars in the table,
and History the trigger, speedup and dollars of each run."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LocalApp, screenshot, start_local_app, stop_local_app

pytestmark = pytest.mark.browser

PRICES = {"gpt-4o-mini": {"input": 3.0, "output": 12.0}}
LEADS = 100


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    local = start_local_app(
        tmp_path_factory.mktemp("app"), env={"KLYNTOS_MODEL_PRICES": json.dumps(PRICES)}
    )
    yield local
    stop_local_app(local)


def usd(value: float) -> str:
    """What the editor writes for a dollar amount (run/metrics.ts formatUsd)."""
    if value == 0:
        return "$0.00"
    if value < 0.0001:
        return "<$0.0001"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def leads(n: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"L{i:03d}",
            "name": f"Person {i}",
            "company": f"Company {i % 17}",
            "title": "CTO",
            "email": f"person{i}@company{i}.example",
            "domain": f"company{i}.example",
            "message": f"Message {i}",
        }
        for i in range(n)
    ]


def test_the_editor_shows_the_runs_cost_line_item_dollars_and_history(
    app: LocalApp, page: Any
) -> None:
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto("/")
    page.click('[data-testid="template-parallel-lead-enrichment"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    workflow_id = int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    page.wait_for_selector('[data-block-name="agent_merge"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"run-input\"]')?.value.includes('leads')"
    )
    page.fill('[data-testid="run-input"]', json.dumps({"leads": leads(LEADS)}))
    page.click('[data-testid="run-button"]')
    page.wait_for_selector(f'[data-testid="progress"]:has-text("{LEADS}/{LEADS}")', timeout=120_000)
    page.wait_for_selector('[data-testid="run-status"]:has-text("succeeded")')

    run = page.request.get(f"/api/workflows/{workflow_id}/runs/last/").json()["run"]
    summary = page.request.get(f"/api/runs/{run['id']}/summary/").json()["summary"]
    assert summary["llm_calls"] == 2 * LEADS + 1 and summary["unpriced_models"] == []
    expected = (summary["tokens"]["prompt"] * 3.0 + summary["tokens"]["completion"] * 12.0) / 1e6
    assert summary["cost_usd"] == pytest.approx(expected)
    assert summary["speedup"] > 2

    # The cost line shows the server's numbers once the run has ended.
    speedup = f"{summary['speedup']:.1f}× faster than sequential"
    page.wait_for_selector(f'[data-testid="speedup"]:has-text("{speedup}")')
    assert page.locator('[data-testid="cost-usd"]').inner_text() == usd(summary["cost_usd"])
    tokens = page.locator('[data-testid="cost-tokens"]').inner_text()
    assert tokens == f"{summary['tokens']['total']:,} tokens in {2 * LEADS + 1} LLM calls"
    assert "gpt-4o-mini" in (page.locator('[data-testid="cost-usd"]').get_attribute("title") or "")

    # Each item's own dollars in the table, as the item page has them.
    rows = page.request.get(f"/api/runs/{run['id']}/items/?limit=20").json()["results"]
    shown = page.locator('[data-testid="item-row"] [data-testid="item-cost"]')
    shown.nth(9).wait_for()
    for i in range(10):
        assert rows[i]["tokens"] > 0
        assert shown.nth(i).inner_text() == usd(rows[i]["cost_usd"])
    screenshot(page, "run-cost-line")

    # A webhook run, then History: each run's trigger, speedup and dollars.
    hook = page.request.get(f"/api/workflows/{workflow_id}/").json()["webhook_url"]
    request = urllib.request.Request(
        hook,
        data=json.dumps({"leads": leads(3)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our test app
        assert answer.status == 202
    page.click('[data-testid="tab-history"]')
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=history-status]')]"
        ".map(e => e.textContent).join() === 'succeeded,succeeded'",
        timeout=60_000,
    )
    # The row's status may be patched from the workflow socket a moment before the page is
    # read again with the run's final cost line: wait for the latter.
    hook_run = page.request.get(f"/api/workflows/{workflow_id}/runs/last/").json()["run"]
    hook_cost = page.request.get(f"/api/runs/{hook_run['id']}/summary/").json()["summary"]
    assert hook_cost["llm_calls"] == 7
    hook_row = page.locator(f'[data-testid="history-row"][data-run-id="{hook_run["id"]}"]')
    hook_row.locator(
        f'[data-testid="history-cost"]:text-is("{usd(hook_cost["cost_usd"])}")'
    ).wait_for()
    assert (
        hook_row.locator('[data-testid="history-speedup"]').inner_text()
        == f"{hook_cost['speedup']:.1f}×"
    )
    triggers = page.locator('[data-testid="history-trigger"]').all_inner_texts()
    assert triggers == ["webhook", "editor (draft)"]
    editor_row = page.locator(f'[data-testid="history-row"][data-run-id="{run["id"]}"]')
    assert editor_row.locator('[data-testid="history-cost"]').inner_text() == usd(
        summary["cost_usd"]
    )
    assert (
        editor_row.locator('[data-testid="history-speedup"]').inner_text()
        == f"{summary['speedup']:.1f}×"
    )
    screenshot(page, "run-cost-history")

    # Every page has an icon: no request for one ends in a 404, the admin's included.
    page.goto("/admin/")
    page.wait_for_load_state("networkidle")
    icon = page.request.get("/favicon.ico")
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
    assert missing == []


def test_a_budget_set_in_the_editor_stops_the_next_run_starting_items(
    app: LocalApp, page: Any
) -> None:
    page.goto("/")
    page.click('[data-testid="template-parallel-lead-enrichment"]')
    page.wait_for_url(re.compile(r".*/workflows/\d+/$"))
    workflow_id = int(re.search(r"/workflows/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    page.wait_for_selector('[data-block-name="agent_merge"]')

    field = page.locator('[data-testid="budget-input"]')
    field.fill("-1")
    assert page.locator('[data-testid="budget-error"]').inner_text() == (
        "Budget: a budget cannot be negative"
    )
    assert page.locator('[data-testid="budget-save"]').is_disabled()
    field.fill("$0.000001")  # less than one lead costs: the first window runs, then no more
    page.click('[data-testid="budget-save"]')
    page.wait_for_selector(
        '[data-testid="budget-status"]:has-text("Budget set: $0.000001 per run")'
    )
    assert page.request.get(f"/api/workflows/{workflow_id}/").json()["budget_usd"] == 1e-06
    page.reload()
    page.wait_for_selector('[data-block-name="agent_merge"]')
    assert page.locator('[data-testid="budget-input"]').input_value() == "0.000001"

    page.fill('[data-testid="run-input"]', json.dumps({"leads": leads(40)}))
    page.click('[data-testid="run-button"]')
    page.wait_for_selector(
        '[data-testid="run-status"]:has-text("partially succeeded")', timeout=120_000
    )
    run = page.request.get(f"/api/workflows/{workflow_id}/runs/last/").json()["run"]
    items = page.request.get(f"/api/runs/{run['id']}/items/?status=not_started&limit=1").json()
    # At most the first window (the loop's cap of 10) ran before the budget was known spent.
    assert 30 <= items["count"] < 40
    assert "budget" in items["results"][0]["error"]
    screenshot(page, "budget-stopped-run")

    page.click('[data-testid="tab-input"]')
    page.locator('[data-testid="budget-input"]').fill("")
    page.click('[data-testid="budget-save"]')
    page.wait_for_selector('[data-testid="budget-status"]:has-text("No budget")')
    assert page.request.get(f"/api/workflows/{workflow_id}/").json()["budget_usd"] is None
