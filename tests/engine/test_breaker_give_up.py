"""A provider down for good, end to end (the lead template on PostgreSQL or SQLite, the
simulator answering Clearbit's every call with 503): the breaker opens, cools down, probes
and reopens, then gives up (`give_up_after`) and the leads waiting for Clearbit fail with
its reason; the run ends instead of staying paused forever, and its failure report still
goes out (the template's loop continues when every item failed)."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from builder.gallery import template_get
from builder.services import run_create, workflow_create
from engine.core.provider_state import paused
from engine.models import ItemRun, StepRun
from engine.runner import execute_run
from simulator.testing import RunningSimulator
from tests.engine.test_lead_template import make_leads, summary_request

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

KEY = "api.clearbit.com"
LEADS = 30
GIVE_UP_AFTER = 2.0
GAVE_UP = re.compile(
    rf"^{re.escape(KEY)} unavailable for \d+(\.\d)? s \(breaker open: [^)]*"
    r"(\([^)]*\))?\); not retried$"
)


def lead_template(breaker: dict[str, Any]) -> dict[str, Any]:
    """The template's graph with `breaker` as its loop's `circuit_breaker`."""
    graph = copy.deepcopy(template_get("parallel-lead-enrichment")["graph"])
    [loop] = [b for b in graph["blocks"] if b["id"] == "loop"]
    loop["config"]["circuit_breaker"] = breaker
    return graph


def test_leads_waiting_for_a_provider_down_for_good_fail_after_give_up_and_the_run_ends(
    owner: Any, simulator: RunningSimulator
) -> None:
    simulator.control.configure(failures=[{"endpoint": "clearbit", "status": 503}])
    breaker = {
        "failure_rate": 0.5,
        "min_calls": 5,
        "window": 10,
        "cool_down": 0.2,
        "probes": 3,
        "give_up_after": GIVE_UP_AFTER,
    }
    workflow = workflow_create(owner=owner, name="leads", graph=lead_template(breaker))
    run, _ = run_create(workflow=workflow, input={"leads": make_leads(LEADS)})
    started = time.monotonic()
    # Bounded by the give-up, not by cool-downs per lead (before: paused for ever).
    asyncio.run(asyncio.wait_for(execute_run(run.pk), GIVE_UP_AFTER + 20))
    assert time.monotonic() - started < GIVE_UP_AFTER + 10
    run.refresh_from_db()
    # Every lead failed, so the run fails at the loop, as when any step fails them all.
    assert run.status == "failed"
    assert (run.succeeded, run.failed) == (0, LEADS)
    assert (run.error or "").startswith(f"'loop' failed: all {LEADS} items failed; first: ")

    # Each lead failed at the lookup, with the give-up's reason (what "Retry failed" reruns).
    items = list(ItemRun.objects.filter(run=run, parent_key=""))
    assert len(items) == LEADS
    for item in items:
        assert (item.status, item.failed_block) == ("failed", "http_clearbit"), item.error
        assert GAVE_UP.match(item.error), item.error
    assert not ItemRun.objects.filter(run=run).exclude(status__in=["failed", "succeeded"])
    assert not StepRun.objects.filter(run=run, status__in=["running", "waiting", "paused"])

    # The run waits for Clearbit no more: its breaker record says it gave up.
    record = run.providers[KEY]["breaker"]
    assert record["state"] == "gave_up" and GAVE_UP.match(record["message"])
    assert "open" in [state for _, state in record["history"]]
    assert paused(run.providers) == []
    client = APIClient()
    client.force_authenticate(owner)
    assert client.get(f"/api/runs/{run.pk}/").json()["paused"] == []
    page = client.get(f"/api/runs/{run.pk}/items/", {"status": "failed"}).json()
    assert page["count"] == LEADS
    assert all(GAVE_UP.match(i["error"]) for i in page["results"])

    # The loop's failures reach the summary and the failure report, as any step failure.
    prompt = summary_request(simulator)["messages"][1]["content"]
    failures = json.loads(prompt.rsplit("Failures by step, with examples: ", 1)[1])
    assert failures["count"] == LEADS and failures["by_step"]["http_clearbit"] == LEADS
    assert all(GAVE_UP.match(e["error"]) for e in failures["examples"])
    posts = [c for c in simulator.control.stats()["received"] if c["endpoint"] == "slack"]
    assert len(posts) == 2
    report = posts[1]["text"]
    assert report.startswith(f"⚠️ {LEADS} of {LEADS} leads failed enrichment:\n")
    assert report.count(f"at http_clearbit: {KEY} unavailable for ") == LEADS
