"""`<env.X>`: a workflow reads only its owner's secrets and the variables the operator
allow-listed by name. Anything else — the server's own settings, another user's secret —
is refused with an error naming the block, the field and the name, and is not there at run
time either, even for a graph that never went through validation."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from builder import services
from engine.models import Run
from engine.runner import execute_run

PROCESS_SECRET = "process-only-value-5e1c9a"


def graph_reading(name: str) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {
                "id": "peek",
                "type": "transform",
                "name": "peek",
                "config": {"input": {"v": f"<env.{name}>"}, "expression": "v"},
            },
        ],
        "edges": [{"source": "hook", "target": "peek"}],
    }


@pytest.fixture
def process_env(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setenv("KLYNTOS_HOSTILE_PROBE", PROCESS_SECRET)
    monkeypatch.setenv("SHARED_ALLOWED", "allowed-value")
    settings.KLYNTOS_ENV_ALLOWLIST = ["SHARED_ALLOWED"]


def refusal(name: str) -> dict[str, Any]:
    return {
        "block": "peek",
        "field": "input.v",
        "message": f"<env.{name}>: '{name}' is not one of your secrets nor an allow-listed variable",
    }


def errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: e.get(k) for k in ("block", "field", "message")} for e in body["errors"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["KLYNTOS_HOSTILE_PROBE", "SECRET_KEY", "DATABASE_URL", "PATH", "HOME", "OTHERS_KEY"]
)
def test_env_outside_the_allowlist_is_refused_naming_block_field_and_name(
    api: APIClient, other_user: Any, process_env: None, name: str
) -> None:
    services.secret_set(owner=other_user, name="OTHERS_KEY", value="belongs-to-someone-else")
    created = api.post(
        "/api/workflows/", {"name": "peek", "graph": graph_reading(name)}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["validation"]["ok"] is False
    assert refusal(name) in errors_of(body["validation"])
    started = api.post(f"/api/workflows/{body['id']}/runs/", {}, format="json")
    assert started.status_code == 400
    assert started.json()["error"] == "the workflow is not valid"
    assert refusal(name) in errors_of(started.json())
    assert Run.objects.count() == 0
    assert PROCESS_SECRET not in started.content.decode() + created.content.decode()


@pytest.mark.django_db
def test_the_reference_picker_offers_only_allowed_names(
    api: APIClient, other_user: Any, process_env: None
) -> None:
    services.secret_set(owner=other_user, name="OTHERS_KEY", value="belongs-to-someone-else")
    api.post("/api/secrets/", {"name": "MY_KEY", "value": "mine-1234"}, format="json")
    created = api.post(
        "/api/workflows/", {"name": "p", "graph": graph_reading("MY_KEY")}, format="json"
    ).json()
    answer = api.post(f"/api/workflows/{created['id']}/validate/", {}, format="json").json()
    offered = {
        entry["ref"]
        for entries in answer["scopes"].values()
        for entry in entries
        if entry["ref"].startswith("env.")
    }
    assert offered == {"env.MY_KEY", "env.SHARED_ALLOWED"}


@pytest.mark.django_db
@pytest.mark.parametrize("ref", ["<env>", "<env.A.B>"])
def test_env_references_must_name_one_variable(api: APIClient, ref: str) -> None:
    graph = graph_reading("X")
    graph["blocks"][1]["config"]["input"]["v"] = ref
    body = api.post("/api/workflows/", {"name": "p", "graph": graph}, format="json").json()
    messages = [e["message"] for e in body["validation"]["errors"]]
    assert f"{ref}: write <env.NAME>" in messages


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
@pytest.mark.parametrize("name", ["KLYNTOS_HOSTILE_PROBE", "SECRET_KEY", "OTHERS_KEY"])
def test_a_graph_that_skipped_validation_still_cannot_read_them(
    user: Any, other_user: Any, process_env: None, name: str
) -> None:
    """A run row made behind validation's back (a stale version, a bug): the step fails with
    the missing name, and the value exists nowhere in the run."""
    services.secret_set(owner=other_user, name="OTHERS_KEY", value="belongs-to-someone-else")
    workflow = services.workflow_create(owner=user, name="peek", graph=graph_reading(name))
    run = Run.objects.create(
        owner=user, workflow=workflow, version=workflow.current_version, input={}, trigger="api"
    )
    async_to_sync(execute_run)(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == f"peek: reference <env.{name}>: 'env' has no field '{name}'"
    step = run.steps.get(block_id="peek")
    assert step.status == "failed" and step.error == run.error.split(": ", 1)[1]
    stored = repr(list(Run.objects.filter(pk=run.pk).values())) + repr(
        list(run.steps.values()) + list(run.items.values())
    )
    assert PROCESS_SECRET not in stored and "belongs-to-someone-else" not in stored


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
def test_an_allow_listed_variable_and_an_own_secret_are_readable(
    user: Any, process_env: None, finish_run: Any
) -> None:
    services.secret_set(owner=user, name="MY_KEY", value="mine-1234")
    for name, value in [("SHARED_ALLOWED", "allowed-value"), ("MY_KEY", "mine-1234")]:
        workflow = services.workflow_create(owner=user, name=name, graph=graph_reading(name))
        run, _ = services.run_start(workflow=workflow, input={})
        run = finish_run(run.pk)
        assert run.status == "succeeded", run.error
        # Read, and masked wherever it would be shown.
        assert run.outputs == {"hook": {"body": {}}, "peek": {"result": "[redacted]"}}
        assert value not in repr(list(run.steps.values()))
