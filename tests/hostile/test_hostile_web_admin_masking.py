"""The admin masks secret values by value on every page showing run data (issue 12.4), and
run data is read-only there."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from builder.services import run_create, secret_set, workflow_create
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run

SECRET = "sk-admin-echo-7c1f0e9d2b3a4c5d"
LATER = "token-set-after-the-run-42"  # becomes a secret only after the run ended

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


@pytest.fixture
def ran(django_user_model: Any) -> tuple[Any, Run]:
    owner = django_user_model.objects.create_superuser("root", password="root-password-1")
    secret_set(owner=owner, name="VENDOR_KEY", value=SECRET)
    graph = {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "loop",
                "type": "loop",
                "name": "loop",
                "config": {"items": "<webhook.body.leads>"},
            },
            {
                "id": "echo",
                "type": "transform",
                "name": "echo",
                "parent": "loop",
                "config": {
                    "input": {"key": "<env.VENDOR_KEY>", "lead": "<item>"},
                    "expression": "@",
                },
            },
        ],
        "edges": [{"source": "webhook", "target": "loop"}],
    }
    workflow = workflow_create(owner=owner, name="echo", graph=graph)
    body = {"leads": [{"note": f"key {SECRET}", "other": LATER}], "pasted": SECRET}
    run, _ = run_create(workflow=workflow, input=body)
    asyncio.run(execute_run(run.pk))
    connections.close_all()
    secret_set(owner=owner, name="LATER", value=LATER)
    return owner, Run.objects.get(pk=run.pk)


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_run_item_and_step_pages_show_secrets_masked(ran: tuple[Any, Run]) -> None:
    owner, run = ran
    assert run.status == "succeeded", run.error
    assert SECRET in str(run.input)  # stored as received: the caller's body
    client = Client()
    client.force_login(owner)
    step = StepRun.objects.get(run=run, name="echo")
    item = ItemRun.objects.get(run=run)
    pages = {
        "run": page(client, f"/admin/engine/run/{run.pk}/change/"),
        "item": page(client, f"/admin/engine/itemrun/{item.pk}/change/"),
        "step": page(client, f"/admin/engine/steprun/{step.pk}/change/"),
        "runs": page(client, "/admin/engine/run/"),
        "steps": page(client, "/admin/engine/steprun/"),
    }
    for name, html in pages.items():
        assert SECRET not in html and LATER not in html, name
    for name in ("run", "item", "step"):
        assert "[redacted]" in pages[name], name
    assert "pasted" in pages["run"] and "lead" in pages["step"]  # the data is there, masked


def test_run_data_is_read_only_in_the_admin(ran: tuple[Any, Run]) -> None:
    owner, run = ran
    client = Client()
    client.force_login(owner)
    step = StepRun.objects.get(run=run, name="echo")
    html = page(client, f"/admin/engine/steprun/{step.pk}/change/")
    assert 'name="_save"' not in html and "<textarea" not in html
    assert client.post(f"/admin/engine/steprun/{step.pk}/change/", {}).status_code == 403
    assert client.get("/admin/engine/itemrun/add/").status_code == 403
    assert client.get("/admin/engine/run/add/").status_code == 403
