"""A dollar budget per run and per workflow (issue 9 item 7): once a run's priced usage
reaches it, no loop item starts; the items in flight finish, the rest are `not_started`
with the reason, and the run says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rest_framework.test import APIClient

from builder.gallery import template_instantiate
from builder.services import run_create
from engine import run_costs
from engine.core.executor import plain_dollars
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run
from simulator.testing import RunningSimulator
from tests.engine.conftest import owner, simulator
from tests.engine.test_lead_template import make_leads

__all__ = ["owner", "simulator"]

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

CAP = 10  # the template loop's max_concurrent


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def run(workflow: Any, leads: list[dict[str, Any]], **options: Any) -> Run:
    started, _ = run_create(workflow=workflow, input={"leads": leads}, options=options or None)
    asyncio.run(execute_run(started.pk))
    started.refresh_from_db()
    return started


def item_dollars(run: Run) -> list[float]:
    keys = list(
        ItemRun.objects.filter(run=run, status__in=["succeeded", "failed"]).values_list(
            "key", flat=True
        )
    )
    return [c["cost_usd"] or 0.0 for c in run_costs.item_costs(run, keys).values()]


def test_a_budget_stops_dispatch_at_most_the_items_in_flight_past_it(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_MODEL_PRICES = '{"gpt-4o-mini": {"input": 150, "output": 600}}'
    workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    leads = make_leads(100)
    whole = run(workflow, leads[:10])
    per_item = max(item_dollars(whole))
    budget = round(per_item * 25, 6)
    stopped = run(workflow, leads, budget_usd=budget)

    assert stopped.options["budget_usd"] == budget
    assert stopped.status == "partially_succeeded"
    spent = item_dollars(stopped)
    loop_spent = sum(spent)
    # Dispatch stopped once the budget was reached: the items already in flight finished.
    assert budget <= loop_spent <= budget + CAP * per_item, (budget, loop_spent, per_item)
    assert 25 <= len(spent) <= 25 + CAP
    not_started = ItemRun.objects.filter(run=stopped, status="not_started")
    assert not_started.count() == 100 - len(spent)
    reasons = set(not_started.values_list("error", flat=True))
    assert len(reasons) == 1 and reasons.pop().startswith(
        f"not started: the run's budget of ${plain_dollars(budget)} was reached ($"
    )
    assert f"{100 - len(spent)} items not started" in stopped.error
    assert stopped.not_started == 100 - len(spent)
    # Every item that started finished: none was cut off in flight.
    assert not ItemRun.objects.filter(run=stopped, status__in=["running", "cancelled"]).exists()
    # The summary after the loop still ran over what was enriched, and says the rest of the
    # batch was never started, and why (it read "37 enriched, 0 failed" and nothing more).
    assert StepRun.objects.get(run=stopped, item_key="", block_id="slack").status == "succeeded"
    [post] = [c for c in simulator.control.stats()["received"][-3:] if c["endpoint"] == "slack"]
    left = 100 - len(spent)
    assert (
        f"\n⏸ {left} leads not started: the run's budget of ${plain_dollars(budget)}"
        in (post["text"])
    )
    summary = StepRun.objects.get(run=stopped, item_key="", block_id="loop").output
    assert summary["not_started"] == left and "budget" in summary["not_started_reason"]


def test_the_workflow_budget_applies_unless_the_run_sets_its_own(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    settings.KLYNTOS_MODEL_PRICES = '{"gpt-4o-mini": {"input": 150, "output": 600}}'
    workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    client = client_for(owner)
    answer = client.put(f"/api/workflows/{workflow.pk}/", {"budget_usd": -1}, format="json")
    assert answer.status_code == 400 and "budget_usd" in answer.json()
    answer = client.put(f"/api/workflows/{workflow.pk}/", {"budget_usd": 0.5}, format="json")
    assert answer.status_code == 200 and answer.json()["budget_usd"] == 0.5
    started = client.post(
        f"/api/workflows/{workflow.pk}/runs/", {"input": {"leads": []}}, format="json"
    )
    assert started.status_code == 201
    assert Run.objects.get(pk=started.json()["id"]).options["budget_usd"] == 0.5
    own = client.post(
        f"/api/workflows/{workflow.pk}/runs/",
        {"input": {"leads": []}, "budget_usd": 2},
        format="json",
    )
    assert Run.objects.get(pk=own.json()["id"]).options["budget_usd"] == 2
    # None on either: the operator's default, or no budget at all.
    client.put(f"/api/workflows/{workflow.pk}/", {"budget_usd": None}, format="json")
    free, _ = run_create(workflow=workflow, input={"leads": []})
    assert "budget_usd" not in free.options
    settings.KLYNTOS_RUN_BUDGET_USD = 3.0
    default, _ = run_create(workflow=workflow, input={"leads": []})
    assert default.options["budget_usd"] == 3.0
    # A budget a workflow never reaches changes nothing.
    done = run(workflow, make_leads(5), budget_usd=1000)
    assert done.status == "succeeded" and done.not_started == 0
