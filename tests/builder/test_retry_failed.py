"""Retry failed items in one call (issue 8 item 7): a linked run reuses the succeeded
steps of the first, re-runs each failed item from its failed step, and summarises the whole
batch again; no succeeded step — no paid LLM call — is repeated."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from builder.gallery import template_instantiate
from builder.services import workflow_create
from engine import run_costs
from engine.models import ItemRun, Run, StepRun
from engine.runner import executor
from simulator.testing import RunningSimulator
from tests.engine.conftest import owner, simulator
from tests.engine.test_breaker_give_up import lead_template
from tests.engine.test_lead_template import (
    ANALYSIS_SYSTEM,
    SUMMARY_SYSTEM,
    make_leads,
    run_template,
)
from tests.leads.rows import rows_by_lead

__all__ = ["owner", "simulator"]

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

MERGE_SYSTEM = "Combine this data into a complete lead profile with a qualification recommendation."
LEADS = 100
FAILING = [3, 14, 25, 36, 47, 58, 69, 80, 91, 99]


def openai_calls(sim: RunningSimulator, system: str) -> list[dict[str, Any]]:
    return [
        c["json"]
        for c in sim.control.stats()["received"]
        if c["endpoint"] == "openai" and c["json"]["messages"][0]["content"] == system
    ]


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_retry_failed_repeats_only_the_failed_steps_and_summarises_the_whole_batch(
    owner: Any, simulator: RunningSimulator
) -> None:
    leads = make_leads(LEADS)
    simulator.control.configure(
        failures=[
            {"endpoint": "clearbit", "match": {"domain": leads[i]["domain"]}, "status": 404}
            for i in FAILING
        ]
    )
    first = run_template(owner, {"leads": leads})
    assert first.status == "partially_succeeded" and first.failed == len(FAILING)
    assert len(rows_by_lead(owner)) == LEADS - len(FAILING)
    first_summary = run_costs.summary(Run.objects.select_related("version").get(pk=first.pk))

    simulator.control.reset(latency_ms=40)  # the provider is fixed; counts start again
    api = client_for(owner)
    answer = api.post(f"/api/runs/{first.pk}/retry-failed/")
    assert answer.status_code == 201, answer.content
    retry_id = answer.json()["id"]
    assert answer.json()["retry_of"] == str(first.pk) and answer.json()["trigger"] == "retry"
    executor.wait(retry_id, timeout=60)
    retry = Run.objects.get(pk=retry_id)
    assert retry.status == "succeeded", retry.error
    assert (retry.total, retry.succeeded, retry.failed) == (LEADS, LEADS, 0)

    stats = simulator.control.stats()["requests"]
    assert stats.get("clearbit") == len(FAILING)
    assert len(openai_calls(simulator, MERGE_SYSTEM)) == len(FAILING)
    assert openai_calls(simulator, ANALYSIS_SYSTEM) == []  # no paid call repeated
    assert stats.get("linkedin", 0) == 0 and stats.get("slack") == 1
    [summary] = openai_calls(simulator, SUMMARY_SYSTEM)
    assert (
        f"Processed {LEADS} leads: {LEADS} enriched, 0 failed, 0 not started."
        in summary["messages"][1]["content"]
    )
    assert len(rows_by_lead(owner)) == LEADS
    # The linked run holds every item and step, reused ones included.
    assert ItemRun.objects.filter(run_id=retry_id, status="succeeded").count() == LEADS
    assert StepRun.objects.filter(run_id=retry_id, block_id="agent_analysis").count() == LEADS

    # Its cost line counts only the calls it made: the reused steps' are the first run's,
    # shown apart as not spent again; the first run's own summary is unchanged.
    cost = run_costs.summary(Run.objects.select_related("version").get(pk=retry_id))
    made = stats.get("openai", 0)
    assert made == len(FAILING) + 1
    assert cost["llm_calls"] == made, cost
    assert cost["tokens"]["total"] < first_summary["tokens"]["total"] / 5
    assert cost["items_measured"] == len(FAILING)  # the items it ran
    assert cost["sequential_seconds"] < first_summary["sequential_seconds"] / 3
    reused = cost["reused"]
    assert reused["items"] == LEADS - len(FAILING)
    assert reused["llm_calls"] == first_summary["llm_calls"] - 1  # all but the batch summary
    assert reused["tokens"] > 0 and reused["seconds"] > 0
    assert reused["steps"] == StepRun.objects.filter(run_id=retry_id, cache="reused").count()
    detail = api.get(f"/api/runs/{retry_id}/items/", {"key": "loop[0]"}).json()["results"]
    assert detail and detail[0]["tokens"] == 0  # a reused item: no call of the retry's
    again = run_costs.summary(Run.objects.select_related("version").get(pk=first.pk))
    assert (again["llm_calls"], again["tokens"]) == (
        first_summary["llm_calls"],
        first_summary["tokens"],
    )
    assert again["reused"]["items"] == 0 and again["reused"]["llm_calls"] == 0

    # History shows the link both ways.
    listed = api.get(f"/api/workflows/{first.workflow_id}/runs/").json()["results"]
    by_id = {r["id"]: r for r in listed}
    assert by_id[str(first.pk)]["retries"] == [retry_id]
    assert by_id[retry_id]["retry_of"] == str(first.pk)
    # Nothing failed any more: a retry of the retry has nothing to do.
    again = api.post(f"/api/runs/{retry_id}/retry-failed/")
    assert again.status_code == 409 and "nothing to retry" in again.json()["error"]


def test_retry_failed_refuses_a_running_run_and_another_users_run(
    owner: Any, other_user: Any, simulator: RunningSimulator
) -> None:
    workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    from builder.services import run_create

    run, _ = run_create(workflow=workflow, input={"leads": make_leads(2)})
    api = client_for(owner)
    answer = api.post(f"/api/runs/{run.pk}/retry-failed/")
    assert answer.status_code == 409 and "not ended" in answer.json()["error"]
    assert client_for(other_user).post(f"/api/runs/{run.pk}/retry-failed/").status_code == 404
    assert not Run.objects.filter(retry_of=run).exists()


def test_a_run_whose_every_lead_failed_is_retried_whole_once_the_provider_is_fixed(
    owner: Any, simulator: RunningSimulator
) -> None:
    """The template's loop goes on when every lead fails (the failure report is posted) and
    the run ends failed; its retry repeats each lead from its failed lookup, nothing more."""
    leads = make_leads(12)
    simulator.control.configure(failures=[{"endpoint": "clearbit", "status": 401}])
    first = run_template(owner, {"leads": leads})
    assert first.status == "failed" and (first.succeeded, first.failed) == (0, 12)
    assert simulator.control.stats()["requests"]["slack"] == 2

    simulator.control.reset()
    answer = client_for(owner).post(f"/api/runs/{first.pk}/retry-failed/")
    assert answer.status_code == 201, answer.content
    retry_id = answer.json()["id"]
    executor.wait(retry_id, timeout=60)
    retry = Run.objects.get(pk=retry_id)
    assert retry.status == "succeeded", retry.error
    assert (retry.total, retry.succeeded, retry.failed) == (12, 12, 0)
    assert len(rows_by_lead(owner)) == 12
    stats = simulator.control.stats()["requests"]
    assert stats.get("clearbit") == 12 and stats.get("slack") == 1
    assert stats.get("linkedin", 0) == 0
    assert openai_calls(simulator, ANALYSIS_SYSTEM) == []  # the analyses succeeded the first time


def test_retry_failed_resumes_a_provider_the_breaker_gave_up_on(
    owner: Any, simulator: RunningSimulator
) -> None:
    """A breaker that gave up on Clearbit stays open for its cool-down, refusing calls at
    once: "Retry failed" right after the fix would fail every lead again unless the retry
    closes it (the user's word that the provider is back)."""
    breaker = {"min_calls": 3, "window": 5, "cool_down": 60, "give_up_after": 0.5}
    workflow = workflow_create(owner=owner, name="leads", graph=lead_template(breaker))
    simulator.control.configure(failures=[{"endpoint": "clearbit", "status": 503}])
    api = client_for(owner)
    body = {"input": {"leads": make_leads(8)}}
    started = api.post(f"/api/workflows/{workflow.pk}/runs/", body, format="json")
    assert started.status_code == 201, started.content
    executor.wait(started.json()["id"], timeout=60)
    first = Run.objects.get(pk=started.json()["id"])
    assert first.status == "failed" and first.failed == 8
    assert first.providers["api.clearbit.com"]["breaker"]["state"] == "gave_up"

    simulator.control.reset()  # fixed, well within the breaker's 60 s cool-down
    answer = api.post(f"/api/runs/{first.pk}/retry-failed/")
    assert answer.status_code == 201, answer.content
    executor.wait(answer.json()["id"], timeout=60)
    retry = Run.objects.get(pk=answer.json()["id"])
    assert retry.status == "succeeded", retry.error
    assert (retry.succeeded, retry.failed) == (8, 0)
    assert simulator.control.stats()["requests"]["clearbit"] == 8


def test_a_retrys_peak_counts_the_items_it_runs_not_those_it_reuses(
    owner: Any, simulator: RunningSimulator
) -> None:
    """A retry of one failed lead of 20 showed "peak 10 of 10": the 19 reused items passed
    through the window as if they ran."""
    leads = make_leads(20)
    simulator.control.configure(
        failures=[{"endpoint": "clearbit", "match": {"domain": leads[7]["domain"]}, "status": 404}]
    )
    first = run_template(owner, {"leads": leads})
    assert first.failed == 1 and first.loops["loop"]["peak_running"] == 10
    simulator.control.reset()
    answer = client_for(owner).post(f"/api/runs/{first.pk}/retry-failed/")
    assert answer.status_code == 201, answer.content
    executor.wait(answer.json()["id"], timeout=60)
    retry = Run.objects.get(pk=answer.json()["id"])
    assert retry.status == "succeeded", retry.error
    assert retry.loops["loop"]["peak_running"] == 1
