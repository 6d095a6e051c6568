"""Acceptance (issue 11 item 3, issue 9 item 7): the lead template on 100 leads, read over
REST, reports its wall time, sequential time, speedup, tokens and dollars equal to the sums
of its stored rows; each item and step its own tokens × price; History the same line."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rest_framework.test import APIClient

from engine.core.prices import tally
from engine.models import ItemRun, Run, StepRun
from tests.engine.test_lead_template import make_leads

REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
INPUT_PRICE, OUTPUT_PRICE = 3.0, 12.0  # USD per 1M tokens, not the default list's
PRICES = f'{{"gpt-4o-mini": {{"input": {INPUT_PRICE}, "output": {OUTPUT_PRICE}}}}}'
LEADS = 100


def expect(response: Any, status: int) -> Any:
    assert response.status_code == status, response.content[:500]
    return response.json()


def dollars(usage: Any) -> float:
    return sum(
        (t.prompt * INPUT_PRICE + t.completion * OUTPUT_PRICE) / 1e6 for t in tally(usage).values()
    )


def tokens(usage: Any) -> int:
    return sum(t.total for t in tally(usage).values())


@REAL_RUN
def test_lead_template_on_100_leads_reports_speedup_and_cost_equal_to_its_rows(
    api: APIClient, providers: Any, finish_run: Any, lead_workflow: Any, settings: Any
) -> None:
    settings.KLYNTOS_MODEL_PRICES = PRICES
    providers.control.reset(latency_ms=20, jitter_ms=None, seed=None, record=False)
    started = expect(
        api.post(
            f"/api/workflows/{lead_workflow.pk}/runs/",
            {"input": {"leads": make_leads(LEADS)}},
            format="json",
        ),
        201,
    )
    # The run starts at once, on this process: its first calls may be in the creation's
    # answer already (this read 0, until a fast first call made it 39).
    at_start = started["summary"]["tokens"]["total"]
    finish_run(started["id"], timeout=60)
    run = Run.objects.get(pk=started["id"])
    assert run.status == "succeeded" and run.succeeded == LEADS

    # What the stored rows say, summed here one row at a time.
    steps = list(StepRun.objects.filter(run=run))
    items = list(ItemRun.objects.filter(run=run, parent_key=""))
    wall = (run.finished_at - run.started_at).total_seconds()
    sequential = sum(i.duration for i in items) + sum(
        s.duration for s in steps if s.item_key == "" and s.block_id != "loop"
    )
    all_usage = [entry for s in steps for entry in s.usage]
    assert len(all_usage) == 2 * LEADS + 1  # analysis + merge per lead, one summary

    summary = expect(api.get(f"/api/runs/{run.pk}/"), 200)["summary"]
    assert summary["wall_seconds"] == pytest.approx(wall)
    assert summary["sequential_seconds"] == pytest.approx(sequential, rel=1e-9)
    assert summary["speedup"] == pytest.approx(sequential / wall, rel=1e-9)
    assert summary["speedup"] > 2  # ten leads at once
    assert summary["items_measured"] == LEADS
    assert summary["tokens"]["total"] == tokens(all_usage) > 0
    assert 0 <= at_start < summary["tokens"]["total"]
    assert summary["llm_calls"] == len(all_usage)
    assert summary["cost_usd"] == pytest.approx(dollars(all_usage), rel=1e-12)
    assert summary["unpriced_models"] == []
    assert summary["models"][0]["model"] == "gpt-4o-mini"
    assert summary["models"][0]["price"] == {"input": INPUT_PRICE, "output": OUTPUT_PRICE}

    # The same line from the summary endpoint and in History.
    alone = expect(api.get(f"/api/runs/{run.pk}/summary/"), 200)
    assert alone == {"id": str(run.pk), "status": "succeeded", "summary": summary, "paused": []}
    listed = expect(api.get(f"/api/workflows/{lead_workflow.pk}/runs/"), 200)["results"]
    assert listed[0]["summary"] == summary

    # Dollars per item: each row, its own steps' tokens × price; with the top-level steps
    # they add up to the run's.
    page = expect(api.get(f"/api/runs/{run.pk}/items/", {"limit": 200}), 200)
    assert len(page["results"]) == LEADS
    by_item: dict[str, list[Any]] = {}
    for step in steps:
        by_item.setdefault(step.item_key, []).extend(step.usage)
    for row in page["results"]:
        assert row["tokens"] == tokens(by_item[row["key"]]) > 0
        assert row["cost_usd"] == pytest.approx(dollars(by_item[row["key"]]), rel=1e-12)
    top = dollars(by_item[""])
    assert sum(r["cost_usd"] for r in page["results"]) + top == pytest.approx(summary["cost_usd"])

    # Dollars per step, in an item's detail.
    detail = expect(api.get(f"/api/runs/{run.pk}/items/", {"key": "loop[7]"}), 200)
    item = detail["results"][0]
    assert item["cost_usd"] == pytest.approx(dollars(by_item["loop[7]"]))
    for step in item["steps"]:
        assert step["tokens"] == tokens(step["usage"])
        assert step["cost_usd"] == pytest.approx(dollars(step["usage"]), rel=1e-12)
    assert {s["block_id"] for s in item["steps"] if s["tokens"]} == {
        "agent_analysis",
        "agent_merge",
    }


@REAL_RUN
def test_without_a_price_tokens_are_counted_and_dollars_unknown(
    api: APIClient, providers: Any, finish_run: Any, lead_workflow: Any, settings: Any
) -> None:
    """A model no table prices (the defaults are OpenAI's list) leaves dollars out."""
    settings.KLYNTOS_MODEL_PRICES = '{"gpt-4o": {"input": 1, "output": 1}}'
    graph = copy.deepcopy(lead_workflow.current_version.graph)
    for block in graph["blocks"]:
        if block["type"] == "agent":
            block["config"]["model"] = "house-model"
    workflow = expect(
        api.post("/api/workflows/", {"name": "house", "graph": graph}, format="json"), 201
    )
    started = expect(
        api.post(
            f"/api/workflows/{workflow['id']}/runs/",
            {"input": {"leads": make_leads(3)}},
            format="json",
        ),
        201,
    )
    finish_run(started["id"])
    summary = expect(api.get(f"/api/runs/{started['id']}/summary/"), 200)["summary"]
    assert summary["tokens"]["total"] > 0 and summary["llm_calls"] == 7
    assert summary["cost_usd"] is None
    assert summary["unpriced_models"] == ["house-model"]
    row = expect(api.get(f"/api/runs/{started['id']}/items/"), 200)["results"][0]
    assert row["tokens"] > 0 and row["cost_usd"] is None


@REAL_RUN
def test_in_sandbox_mode_the_simulator_costs_nothing_unless_priced(
    api: APIClient, providers: Any, finish_run: Any, lead_workflow: Any, settings: Any
) -> None:
    settings.KLYNTOS_SANDBOX = True
    settings.KLYNTOS_SIMULATOR_URL = providers.base_url
    settings.KLYNTOS_HOST_OVERRIDES = ""
    started = expect(
        api.post(
            f"/api/workflows/{lead_workflow.pk}/runs/",
            {"input": {"leads": make_leads(2)}},
            format="json",
        ),
        201,
    )
    finish_run(started["id"])
    summary = expect(api.get(f"/api/runs/{started['id']}/summary/"), 200)["summary"]
    assert summary["tokens"]["total"] > 0
    assert summary["cost_usd"] == 0.0 and summary["models"][0]["price"] == {
        "input": 0.0,
        "output": 0.0,
    }
    settings.KLYNTOS_MODEL_PRICES = PRICES
    priced = expect(api.get(f"/api/runs/{started['id']}/summary/"), 200)["summary"]
    assert priced["cost_usd"] == pytest.approx(
        (priced["tokens"]["prompt"] * INPUT_PRICE + priced["tokens"]["completion"] * OUTPUT_PRICE)
        / 1e6
    )
