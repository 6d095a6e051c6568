"""History shows who started each run (issue 10 item 9): the editor's Run button, the REST
API, the webhook, a schedule tick and the CLI each record their own trigger, and the runs
list says it."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from builder import services
from builder.models import Workflow
from builder.schedules import fire_due
from engine.models import Run
from tests.builder.test_api import expect
from tests.builder.test_schedules import scheduled_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

GRAPH = {
    "blocks": [
        {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
        {
            "id": "echo",
            "type": "transform",
            "name": "echo",
            "config": {"input": "<hook.body>", "expression": "@"},
        },
    ],
    "edges": [{"source": "hook", "target": "echo"}],
}


def test_each_entry_point_records_its_trigger_and_history_lists_it(
    api: APIClient, user: Any, finish_run: Any, tmp_path: Path
) -> None:
    workflow = expect(
        api.post("/api/workflows/", {"name": "t", "graph": GRAPH}, format="json"), 201
    )
    runs = f"/api/workflows/{workflow['id']}/runs/"
    started = [
        expect(api.post(runs, {"input": {"n": 1}}, format="json"), 201)["id"],
        expect(
            api.post(
                runs,
                {"input": {"n": 2}, "version": "draft", "trigger": "editor"},
                format="json",
            ),
            201,
        )["id"],
    ]
    hook = Client().post(
        workflow["webhook_url"].removeprefix("http://testserver"),
        data=json.dumps({"n": 3}),
        content_type="application/json",
    )
    assert hook.status_code == 202, hook.content
    started.append(hook.json()["run_id"])
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"n": 4}))
    out = io.StringIO()
    call_command(
        "run_workflow",
        str(workflow["id"]),
        "--input",
        str(body),
        "--user",
        user.username,
        stdout=out,
        stderr=io.StringIO(),
    )
    started.append(json.loads(out.getvalue().splitlines()[-1])["run_id"])
    for run_id in started:
        finish_run(run_id)
    # A trigger the API does not let a caller claim.
    refused = api.post(runs, {"input": {}, "trigger": "schedule"}, format="json")
    assert refused.status_code == 400 and "trigger" in refused.json()

    listed = expect(api.get(runs), 200)["results"]
    by_id = {r["id"]: (r["trigger"], r["draft"]) for r in listed}
    assert [by_id[run_id] for run_id in started] == [
        ("api", False),
        ("editor", True),
        ("webhook", False),
        ("cli", False),
    ]

    nightly = services.workflow_create(owner=user, name="nightly", graph=scheduled_graph())
    tick = dt.datetime(2026, 12, 3, 10, 5, tzinfo=dt.UTC)
    Workflow.objects.filter(pk=nightly.pk).update(schedule_next_at=tick)
    [scheduled] = fire_due(tick)
    finish_run(scheduled.pk)
    [row] = expect(api.get(f"/api/workflows/{nightly.pk}/runs/"), 200)["results"]
    assert row["trigger"] == "schedule" and row["summary"]["wall_seconds"] is not None


def test_a_started_run_is_handed_over_before_open_editors_hear_of_it(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The announce is a round trip of the channel layer: the run's start does not wait for it.
    from engine.runner import executor

    order: list[str] = []
    monkeypatch.setattr(services, "_announce", lambda workflow_id, run_id: order.append("told"))
    monkeypatch.setattr(executor, "submit", lambda run_id: order.append("handed over"))
    workflow = services.workflow_create(owner=user, name="order", graph=GRAPH)
    run, created = services.run_start(workflow=workflow, input={"n": 1}, trigger="webhook")
    assert created and order == ["handed over", "told"]
    Run.objects.filter(pk=run.pk).update(status="failed")  # never executed: submit is ours
    run.refresh_from_db()
    services.run_retry_failed(run=run)
    assert order[2:] == ["handed over", "told"]
