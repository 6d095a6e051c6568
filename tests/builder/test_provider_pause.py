"""A breaker that pauses, over REST (issue 9 item 3): in manual mode the run shows `paused`
with the provider and the reason (run detail and summary) and waits until its owner
resumes the provider; another user gets 404 and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from engine.models import Run
from engine.runner import executor
from tests.engine.test_lead_template import make_leads

REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
KEY = "api.clearbit.com"


def expect(response: Any, status: int) -> Any:
    assert response.status_code == status, response.content[:500]
    return response.json()


@pytest.fixture
def manual_breaker(settings: Any) -> Iterator[None]:
    settings.KLYNTOS_BREAKER = "mode:manual;min_calls:3;window:5;failure_rate:0.5"
    yield
    # The executor's registry outlives the test: never leave a breaker open for the next.
    executor.resume_provider(KEY)


@REAL_RUN
def test_a_manual_breaker_pauses_the_run_until_its_owner_resumes(
    api: APIClient,
    other_api: APIClient,
    providers: Any,
    finish_run: Any,
    wait_for: Any,
    lead_workflow: Any,
    manual_breaker: None,
) -> None:
    providers.control.reset(
        latency_ms=10, failures=[{"endpoint": "clearbit", "status": 503, "times": 5}]
    )
    started = expect(
        api.post(
            f"/api/workflows/{lead_workflow.pk}/runs/",
            {"input": {"leads": make_leads(8)}},
            format="json",
        ),
        201,
    )
    run_id = started["id"]

    def paused() -> Any:
        return expect(api.get(f"/api/runs/{run_id}/"), 200)["paused"]

    [entry] = wait_for(paused, what="the run to show paused")
    assert entry["provider"] == KEY and entry["mode"] == "manual" and entry["state"] == "open"
    assert entry["reason"].endswith("calls failed")
    assert entry["message"].startswith(f"paused: {KEY} breaker open: ")
    summary = expect(api.get(f"/api/runs/{run_id}/summary/"), 200)
    assert summary["paused"] == [entry] and summary["status"] == "running"

    time.sleep(1.0)  # no cool-down ends a manual breaker: still paused, nothing failed
    run = Run.objects.get(pk=run_id)
    assert run.status == "running" and run.failed == 0
    assert paused() == [entry]
    waiting = run.steps.filter(status="waiting")
    assert waiting.exists()
    assert all(step.error.startswith(f"paused: {KEY} breaker open") for step in waiting)

    # Someone else's run does not exist for them, and their Resume changes nothing.
    expect(other_api.post(f"/api/runs/{run_id}/resume-provider/", {}, format="json"), 404)
    assert paused() == [entry]
    # A provider the run does not wait for is a conflict, saying which one it waits for.
    wrong = api.post(
        f"/api/runs/{run_id}/resume-provider/", {"provider": "slack.com"}, format="json"
    )
    assert wrong.status_code == 409
    assert wrong.json()["error"] == f"this run is not paused on slack.com (it waits for {KEY})"

    resumed = expect(
        api.post(f"/api/runs/{run_id}/resume-provider/", {"provider": KEY}, format="json"), 200
    )
    assert resumed["paused"] == []
    run = finish_run(run_id, timeout=60)
    assert run.status == "succeeded" and run.failed == 0
    assert run.providers[KEY]["breaker"]["state"] == "closed"
    assert run.providers[KEY]["breaker"]["reason"] == "resumed"
    # The timeline draws the pause: one open period, from the trip to the Resume.
    [period] = expect(api.get(f"/api/runs/{run_id}/timeline/"), 200)["paused"][KEY]
    assert period["state"] == "open" and period["to"] is not None
    assert period["to"] - period["from"] >= 1.0  # it stayed open through the wait above
    # Once ended, nothing to resume.
    ended = api.post(f"/api/runs/{run_id}/resume-provider/", {}, format="json")
    assert ended.status_code == 409
