"""A run deferred to the off-peak window (issue 9 item 4): `defer: "off_peak"` outside
KLYNTOS_OFF_PEAK_HOURS stores the run `deferred` until the window opens, visible in REST and
History; nothing claims or resumes it before; the scheduler's look queues it at the window
(the clock is injected, no real hours pass); Cancel ends it; inside the window it starts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from builder import services
from builder.schedules import Scheduler
from engine import leases
from engine.models import Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

# 14:35 UTC on a December day is 15:35 in Paris; the window opens at 22:00 there (21:00 UTC).
NOW = dt.datetime(2026, 12, 3, 14, 35, tzinfo=dt.UTC)
OPENS = dt.datetime(2026, 12, 3, 21, 0, tzinfo=dt.UTC)


@pytest.fixture
def off_peak(settings: Any) -> None:
    settings.KLYNTOS_OFF_PEAK_HOURS = "22:00-06:00"
    settings.KLYNTOS_OFF_PEAK_TZ = "Europe/Paris"


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def deferred(workflow: Any, leads: list[dict[str, Any]], now: dt.datetime = NOW) -> Run:
    run, created = services.run_start(
        workflow=workflow, input={"leads": leads}, options={"defer": "off_peak"}, now=now
    )
    assert created
    return run


def test_a_deferred_run_waits_for_the_window_then_the_scheduler_starts_it(
    off_peak: None, providers: Any, lead_workflow: Any, leads: Any, user: Any, finish_run: Any
) -> None:
    run = deferred(lead_workflow, leads)
    assert (run.status, run.deferred_until) == (RunStatus.DEFERRED, OPENS)
    assert run.options["defer"] == "off_peak"
    client = client_for(user)
    shown = client.get(f"/api/runs/{run.pk}/").json()
    assert shown["status"] == "deferred"
    assert dt.datetime.fromisoformat(shown["deferred_until"].replace("Z", "+00:00")) == OPENS
    listed = client.get(f"/api/workflows/{lead_workflow.pk}/runs/").json()["results"]
    assert [(r["id"], r["status"]) for r in listed] == [(str(run.pk), "deferred")]
    # Nothing takes it before its time: no resume, no claim.
    assert run.pk not in leases.resumable()
    assert not leases.claim(run.pk, leases.new_owner())
    # One minute before the window: still deferred.
    assert services.run_start_deferred(now=OPENS - dt.timedelta(minutes=1)) == []
    assert Run.objects.get(pk=run.pk).status == RunStatus.DEFERRED
    # At the window: queued and handed to the executor, which runs it to the end.
    assert services.run_start_deferred(now=OPENS) == [run.pk]
    done = finish_run(run.pk)
    assert done.status == RunStatus.SUCCEEDED and done.succeeded == len(leads)
    assert services.run_start_deferred(now=OPENS + dt.timedelta(hours=1)) == []


def test_the_scheduler_looks_for_due_deferred_runs(
    off_peak: None, providers: Any, lead_workflow: Any, leads: Any, finish_run: Any
) -> None:
    past = deferred(lead_workflow, leads, now=NOW - dt.timedelta(days=1))  # its window is over
    Scheduler(poll_seconds=60).look()
    assert finish_run(past.pk).status == RunStatus.SUCCEEDED


def test_cancel_ends_a_deferred_run_and_it_never_starts(
    off_peak: None, providers: Any, lead_workflow: Any, leads: Any, user: Any
) -> None:
    run = deferred(lead_workflow, leads)
    answer = client_for(user).post(f"/api/runs/{run.pk}/cancel/")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "cancelled"
    assert services.run_start_deferred(now=OPENS) == []
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_inside_the_window_a_deferred_start_starts_now(
    off_peak: None, providers: Any, lead_workflow: Any, leads: Any, finish_run: Any
) -> None:
    run = deferred(lead_workflow, leads, now=OPENS + dt.timedelta(hours=2))
    assert run.deferred_until is None
    assert finish_run(run.pk).status == RunStatus.SUCCEEDED


def test_rest_and_webhook_take_defer_and_refuse_it_without_a_window(
    settings: Any, providers: Any, lead_workflow: Any, leads: Any, user: Any
) -> None:
    client = client_for(user)
    url = f"/api/workflows/{lead_workflow.pk}/runs/"
    body = {"input": {"leads": leads}, "defer": "off_peak"}
    refused = client.post(url, body, format="json")
    assert refused.status_code == 400
    assert "no off-peak window is configured (KLYNTOS_OFF_PEAK_HOURS)" in refused.json()["error"]
    # The editor offers the option only when there is a window: the workflow says which.
    assert client.get(f"/api/workflows/{lead_workflow.pk}/").json()["off_peak_hours"] is None
    assert client.post(url, {**body, "defer": "tonight"}, format="json").status_code == 400
    # A window that is never now (a minute long, a minute from now) defers every start.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    settings.KLYNTOS_OFF_PEAK_HOURS = f"{soon:%H}:00-{soon:%H}:01"
    window = client.get(f"/api/workflows/{lead_workflow.pk}/").json()["off_peak_hours"]
    assert window == f"{soon:%H}:00-{soon:%H}:01"
    started = client.post(url, body, format="json")
    assert started.status_code == 201 and started.json()["status"] == "deferred"
    hook = f"/hooks/{lead_workflow.webhook.token}"
    raw = json.dumps({"leads": leads})
    web = Client()
    assert web.post(f"{hook}?defer=later", raw, content_type="application/json").status_code == 400
    answer = web.post(f"{hook}?defer=off_peak&wait=5", raw, content_type="application/json")
    assert answer.status_code == 202 and "deferred_until" in answer.json()
    run = Run.objects.get(pk=answer.json()["run_id"])
    assert run.status == RunStatus.DEFERRED and run.trigger == "webhook"
    for pending in Run.objects.filter(status=RunStatus.DEFERRED):
        services.run_cancel(run=pending)
