"""Webhook-to-self recursion is bounded, run starts are rate limited per workflow, and a
workflow deleted while runs are starting never answers 500 (issue 7, finding 5)."""

from __future__ import annotations

import datetime
import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.test import Client
from rest_framework.test import APIClient

from builder import services
from builder.models import Workflow
from engine.core.outbound import CALL_DEPTH_HEADER
from engine.models import Run
from tests.hostile.web_served import served
from tests.hostile.web_upstream import upstream

HOOK_ONLY = {
    "blocks": [{"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}],
    "edges": [],
}


@pytest.fixture
def owner(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("caller", password="pw-caller-123")


@pytest.fixture
def api(owner: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(owner)
    return client


def hook(workflow: Any, depth: str | None = None) -> Any:
    headers = {CALL_DEPTH_HEADER: depth} if depth is not None else {}
    return Client().post(
        f"/hooks/{workflow.webhook.token}",
        data=b"{}",
        content_type="application/json",
        headers=headers,
    )


# --- the call depth ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_call_depth_past_the_limit_is_refused_on_webhook_and_api(
    owner: Any, api: APIClient, settings: Any
) -> None:
    settings.KLYNTOS_MAX_CALL_DEPTH = 8
    workflow = services.workflow_create(owner=owner, name="deep", graph=HOOK_ONLY)
    assert hook(workflow, "8").status_code == 202
    refused = hook(workflow, "9")
    assert refused.status_code == 400 and "KLYNTOS_MAX_CALL_DEPTH" in refused.json()["error"]
    assert hook(workflow, "-1").status_code == 400
    url = f"/api/workflows/{workflow.pk}/runs/"
    answer = api.post(url, {"input": {}}, format="json", headers={CALL_DEPTH_HEADER: "9"})
    assert answer.status_code == 400 and "call its own webhook" in answer.json()["error"]
    assert Run.objects.filter(workflow=workflow).count() == 1
    assert Run.objects.get(workflow=workflow).options == {"call_depth": 8}


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_a_runs_outbound_calls_carry_its_depth_plus_one(owner: Any, settings: Any) -> None:
    from asgiref.sync import sync_to_async

    from engine.runner import execute_run

    async with upstream() as server:
        settings.KLYNTOS_HOST_OVERRIDES = f"next.example={server.url}"
        graph = {
            "blocks": [
                *HOOK_ONLY["blocks"],
                {
                    "id": "call",
                    "type": "http",
                    "name": "call",
                    # A block cannot lower the depth to recurse for ever.
                    "config": {"url": "http://next.example/x", "headers": {CALL_DEPTH_HEADER: "0"}},
                },
            ],
            "edges": [{"source": "webhook", "target": "call"}],
        }

        def start() -> Any:
            workflow = services.workflow_create(owner=owner, name="carry", graph=graph)
            run, _ = services.run_create(workflow=workflow, input={}, call_depth=4)
            connections.close_all()
            return run

        run = await sync_to_async(start)()
        await execute_run(run.pk)
    assert [h.get(CALL_DEPTH_HEADER) for h in server.received] == ["5"]


def test_a_workflow_calling_its_own_webhook_stops_at_the_depth_limit(tmp_path: Path) -> None:
    env = {"KLYNTOS_MAX_CALL_DEPTH": "3", "KLYNTOS_TRUSTED_HOSTS": "127.0.0.1"}
    with served(tmp_path / "data", env) as session:
        created = session.client.post("/api/workflows/", json={"name": "self", "graph": HOOK_ONLY})
        workflow = created.json()
        graph = {
            "blocks": [
                *HOOK_ONLY["blocks"],
                {
                    "id": "again",
                    "type": "http",
                    "name": "again",
                    "config": {"method": "POST", "url": workflow["webhook_url"], "body": {}},
                },
            ],
            "edges": [{"source": "webhook", "target": "again"}],
        }
        saved = session.client.put(
            f"/api/workflows/{workflow['id']}/",
            json={"graph": graph, "base_version": workflow["version"], "publish": True},
        )
        assert saved.status_code == 200, saved.text
        started = session.client.post(f"/api/workflows/{workflow['id']}/runs/", json={"input": {}})
        assert started.status_code == 201, started.text

        def runs() -> list[dict[str, Any]]:
            page = session.client.get(f"/api/workflows/{workflow['id']}/runs/").json()
            return list(page["results"])

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            current = runs()
            if len(current) >= 4 and all(r["finished_at"] for r in current):
                break
            time.sleep(0.3)
        time.sleep(1.0)  # nothing more starts afterwards
        final = runs()
    assert len(final) == 4, final  # depths 0, 1, 2, 3; the call at depth 4 is refused
    deepest = final[0]  # the list is newest first
    assert deepest["status"] == "failed" and "returned 400" in deepest["error"], deepest
    assert all(r["status"] == "succeeded" for r in final[1:]), final


# --- the per-workflow rate limit -----------------------------------------------------------


@pytest.mark.django_db
def test_run_starts_past_the_rate_get_429_with_retry_after(
    owner: Any, api: APIClient, settings: Any, tmp_path: Path
) -> None:
    settings.KLYNTOS_RUNS_PER_MINUTE = 3
    workflow = services.workflow_create(owner=owner, name="busy", graph=HOOK_ONLY)
    other = services.workflow_create(owner=owner, name="quiet", graph=HOOK_ONLY)
    url = f"/api/workflows/{workflow.pk}/runs/"
    assert [api.post(url, {"input": {}}, format="json").status_code for _ in range(3)] == [201] * 3
    limited = api.post(url, {"input": {}}, format="json")
    assert limited.status_code == 429 and "3 runs a minute" in limited.json()["error"]
    assert 1 <= int(limited["Retry-After"]) <= 20  # one token comes back every 20 s
    webhook = hook(workflow)
    assert webhook.status_code == 429 and int(webhook["Retry-After"]) >= 1
    body = tmp_path / "body.json"
    body.write_text("{}")
    with pytest.raises(CommandError, match="runs a minute"):
        call_command(
            "run_workflow",
            str(workflow.pk),
            "--input",
            str(body),
            "--user",
            owner.username,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert Run.objects.filter(workflow=workflow).count() == 3
    assert hook(other).status_code == 202  # the limit is per workflow
    # The bucket refills: a minute later there are tokens again.
    Workflow.objects.filter(pk=workflow.pk).update(
        run_tokens_at=Workflow.objects.get(pk=workflow.pk).run_tokens_at
        - datetime.timedelta(seconds=21)
    )
    assert hook(workflow).status_code == 202


@pytest.mark.django_db
def test_the_openapi_schema_declares_the_429_of_run_start(api: APIClient) -> None:
    schema = api.get("/api/schema/", {"format": "json"}).json()
    responses = schema["paths"]["/api/workflows/{id}/runs/"]["post"]["responses"]
    assert {"201", "400", "429"} <= set(responses)


# --- delete while runs start ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_deleting_a_workflow_while_a_run_is_starting_never_500s(owner: Any) -> None:
    workflow = services.workflow_create(owner=owner, name="doomed", graph=HOOK_ONLY)
    inserted = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []
    deleted: list[int] = []

    def start_run() -> None:  # a run start caught between its insert and its commit
        try:
            with transaction.atomic():
                services.run_create(workflow=workflow, input={})
                inserted.set()
                release.wait(10)
        except BaseException as exc:
            errors.append(exc)
        finally:
            inserted.set()
            connections.close_all()

    def delete() -> None:
        try:
            client = APIClient()
            client.raise_request_exception = False
            client.force_authenticate(owner)
            deleted.append(client.delete(f"/api/workflows/{workflow.pk}/").status_code)
        finally:
            connections.close_all()

    starter = threading.Thread(target=start_run)
    starter.start()
    assert inserted.wait(10)
    deleter = threading.Thread(target=delete)
    deleter.start()
    deleter.join(0.5)  # the delete waits for the run start's row lock...
    release.set()  # ...which now commits
    starter.join(10)
    deleter.join(10)
    assert errors == [] and deleted == [204]
    assert not Workflow.objects.filter(pk=workflow.pk).exists()
    assert not Run.objects.filter(workflow_id=workflow.pk).exists()
    # And a start that arrives after the delete is a 404, not a 500.
    late = APIClient()
    late.force_authenticate(owner)
    assert (
        late.post(f"/api/workflows/{workflow.pk}/runs/", {"input": {}}, format="json").status_code
        == 404
    )
