"""The REST API over HTTP: owner scoping, versions, validation, runs against the provider
simulator, secrets that never come back, templates, duplicates, webhook secrets, cancel."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from builder import services
from builder.models import Webhook, Workflow, WorkflowVersion
from builder.webhook_security import sign_payload
from engine.models import Run

# Runs execute on the executor thread (own connections); the database block writes to `data`.
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
TEMPLATE = "parallel-lead-enrichment"
BLOCK_TYPES = {
    "webhook",
    "loop",
    "agent",
    "http",
    "database",
    "slack",
    "transform",
    "response",
    "schedule",
}


def expect(response: Any, status: int) -> Any:
    """Assert the status (showing the body when it differs) and return the parsed body."""
    body = response.content.decode(errors="replace")
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {body[:500]}"
    )
    return response.json() if body else None


def no_raise(client: APIClient) -> APIClient:
    """A server error becomes a 500 response the test asserts on, not an exception."""
    client.raise_request_exception = False
    return client


@pytest.fixture
def api(api: APIClient) -> APIClient:
    return no_raise(api)


@pytest.fixture
def other_api(other_api: APIClient) -> APIClient:
    return no_raise(other_api)


def agent_graph(prompt: str = "Hello") -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "ask", "type": "agent", "name": "ask", "config": {"user_prompt": prompt}},
        ],
        "edges": [],
    }


# --- workflows: create / list / get / rename / delete ------------------------------------


@pytest.mark.django_db
def test_workflow_crud(api: APIClient, other_api: APIClient) -> None:
    created = expect(
        api.post("/api/workflows/", {"name": "Greeter", "graph": agent_graph()}, format="json"), 201
    )
    pk = created["id"]
    assert created["name"] == "Greeter"
    assert created["version"] == 1
    assert created["graph"] == agent_graph()
    assert created["validation"] == {"ok": True, "errors": [], "warnings": []}
    assert created["webhook_url"].startswith("http://testserver/hooks/")

    blank = expect(api.post("/api/workflows/", {}, format="json"), 201)
    assert blank["name"] == "Untitled workflow"
    assert blank["graph"] == {"blocks": [], "edges": []}
    expect(other_api.post("/api/workflows/", {"name": "Not yours"}, format="json"), 201)

    listed = expect(api.get("/api/workflows/"), 200)
    assert sorted(w["id"] for w in listed) == sorted([pk, blank["id"]])

    fetched = expect(api.get(f"/api/workflows/{pk}/"), 200)
    assert fetched["graph"] == agent_graph()
    assert fetched["version"] == 1

    renamed = expect(api.patch(f"/api/workflows/{pk}/", {"name": "Welcomer"}, format="json"), 200)
    assert renamed["name"] == "Welcomer"
    assert renamed["version"] == 1  # a rename is not a new version
    assert expect(api.get(f"/api/workflows/{pk}/"), 200)["name"] == "Welcomer"

    expect(api.delete(f"/api/workflows/{pk}/"), 204)
    expect(api.get(f"/api/workflows/{pk}/"), 404)
    assert [w["id"] for w in expect(api.get("/api/workflows/"), 200)] == [blank["id"]]
    assert not Webhook.objects.filter(workflow_id=pk).exists()


@pytest.mark.django_db
def test_deleting_a_workflow_that_has_runs_deletes_them(
    api: APIClient, lead_workflow: Any, leads: list[dict[str, Any]]
) -> None:
    """BUG: Run.version is on_delete=PROTECT, so deleting a workflow that was ever run
    raises ProtectedError: the API answers 500 instead of 204 (Run.workflow is CASCADE)."""
    run, _ = services.run_create(workflow=lead_workflow, input={"leads": leads})
    response = api.delete(f"/api/workflows/{lead_workflow.pk}/")
    assert response.status_code == 204, (
        f"DELETE of a workflow with a run answered {response.status_code}, expected 204 "
        "(ProtectedError from Run.version on_delete=PROTECT)"
    )
    assert not Workflow.objects.filter(pk=lead_workflow.pk).exists()
    assert not Run.objects.filter(pk=run.pk).exists()


@pytest.mark.django_db
def test_unauthenticated_requests_are_refused(lead_workflow: Any) -> None:
    anonymous = APIClient()
    run, _ = services.run_create(workflow=lead_workflow, input={"leads": []})
    for method, path in [
        ("get", "/api/workflows/"),
        ("post", "/api/workflows/"),
        ("get", f"/api/workflows/{lead_workflow.pk}/"),
        ("delete", f"/api/workflows/{lead_workflow.pk}/"),
        ("post", f"/api/workflows/{lead_workflow.pk}/runs/"),
        ("get", f"/api/runs/{run.pk}/"),
        ("post", f"/api/runs/{run.pk}/cancel/"),
        ("get", "/api/secrets/"),
        ("get", "/api/blocks/"),
        ("get", "/api/templates/"),
    ]:
        response = getattr(anonymous, method)(path, {}, format="json")
        assert response.status_code in (401, 403), (
            f"{method.upper()} {path}: {response.status_code}"
        )
    assert Workflow.objects.filter(pk=lead_workflow.pk).exists()
    assert Run.objects.get(pk=run.pk).status == "queued"


@pytest.mark.django_db
def test_another_users_objects_do_not_exist_for_them(
    api: APIClient, other_api: APIClient, lead_workflow: Any, lead_secrets: dict[str, str]
) -> None:
    pk = lead_workflow.pk
    run, _ = services.run_create(workflow=lead_workflow, input={"leads": []})
    requests = [
        ("get", f"/api/workflows/{pk}/", None),
        ("put", f"/api/workflows/{pk}/", {"name": "mine now"}),
        ("patch", f"/api/workflows/{pk}/", {"graph": agent_graph(), "base_version": 1}),
        ("delete", f"/api/workflows/{pk}/", None),
        ("post", f"/api/workflows/{pk}/validate/", {}),
        ("post", f"/api/workflows/{pk}/duplicate/", {}),
        ("get", f"/api/workflows/{pk}/runs/", None),
        ("post", f"/api/workflows/{pk}/runs/", {"input": {"leads": []}}),
        ("post", f"/api/workflows/{pk}/webhook/secret/", {}),
        ("get", f"/api/runs/{run.pk}/", None),
        ("get", f"/api/runs/{run.pk}/items/", None),
        ("post", f"/api/runs/{run.pk}/cancel/", {}),
    ]
    runs_before = Run.objects.count()
    for method, path, data in requests:
        response = getattr(other_api, method)(path, data, format="json")
        assert response.status_code == 404, f"{method.upper()} {path}: {response.status_code}"
        assert lead_secrets["CLEARBIT_API_KEY"] not in response.content.decode()
    # Nothing changed behind the 404s.
    workflow = Workflow.objects.get(pk=pk)
    assert workflow.name == "Parallel Lead Enrichment"
    assert workflow.current_version.number == 1
    assert Workflow.objects.filter(owner=workflow.owner).count() == 1
    assert Run.objects.count() == runs_before
    assert Run.objects.get(pk=run.pk).status == "queued"
    assert Webhook.objects.get(workflow=workflow).signing_secret_encrypted == ""
    # ... and the owner still sees all of it.
    expect(api.get(f"/api/workflows/{pk}/"), 200)
    expect(api.get(f"/api/runs/{run.pk}/"), 200)
    # Ids that exist nowhere, or are not ids, are 404 too (not 500).
    expect(other_api.get("/api/runs/not-a-uuid/"), 404)
    expect(other_api.get("/api/workflows/999999/"), 404)


# --- versions ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_saving_with_the_current_version_adds_an_immutable_version(
    api: APIClient, lead_workflow: Any, template: dict[str, Any]
) -> None:
    """Every PUT/PATCH with a graph currently answers 500 on PostgreSQL (BUG: workflow_save's
    select_for_update() joins the nullable current_version: "FOR UPDATE cannot be applied to
    the nullable side of an outer join"); the other save tests below fail the same way."""
    pk = lead_workflow.pk
    graph = copy.deepcopy(template["graph"])
    graph["blocks"][-1]["config"]["channel"] = "#other-channel"
    saved = expect(
        api.put(f"/api/workflows/{pk}/", {"graph": graph, "base_version": 1}, format="json"), 200
    )
    assert saved["version"] == 2
    assert saved["graph"] == graph
    versions = {v.number: v.graph for v in WorkflowVersion.objects.filter(workflow_id=pk)}
    assert versions == {1: template["graph"], 2: graph}  # version 1 untouched

    again = expect(
        api.patch(
            f"/api/workflows/{pk}/", {"graph": template["graph"], "base_version": 2}, format="json"
        ),
        200,
    )
    assert again["version"] == 3
    assert WorkflowVersion.objects.get(workflow_id=pk, number=2).graph == graph


@pytest.mark.django_db
def test_saving_with_a_stale_base_version_is_409(
    api: APIClient, lead_workflow: Any, template: dict[str, Any]
) -> None:
    pk = lead_workflow.pk
    # Someone else saved version 2 meanwhile.
    v2 = WorkflowVersion.objects.create(workflow=lead_workflow, number=2, graph=template["graph"])
    Workflow.objects.filter(pk=pk).update(current_version=v2)
    stale = expect(
        api.put(
            f"/api/workflows/{pk}/", {"graph": agent_graph(), "base_version": 1}, format="json"
        ),
        409,
    )
    assert stale["current_version"] == 2
    assert "reload" in stale["error"]
    assert WorkflowVersion.objects.filter(workflow_id=pk).count() == 2
    assert Workflow.objects.get(pk=pk).current_version_id == v2.pk


@pytest.mark.django_db
def test_workflow_versions_are_immutable_rows(lead_workflow: Any) -> None:
    version = lead_workflow.current_version
    version.graph = {"blocks": [], "edges": []}
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    version.refresh_from_db()
    assert version.graph["blocks"]


@pytest.mark.django_db
def test_saving_a_graph_requires_base_version(api: APIClient, lead_workflow: Any) -> None:
    data = expect(
        api.put(f"/api/workflows/{lead_workflow.pk}/", {"graph": agent_graph()}, format="json"), 400
    )
    assert "base_version" in data["error"]
    assert WorkflowVersion.objects.filter(workflow=lead_workflow).count() == 1


NOT_GRAPHS = [
    ("a string", "a workflow graph must be an object with 'blocks' and 'edges'"),
    ({"blocks": {}, "edges": []}, "'blocks' and 'edges' must be lists"),
    ({"blocks": [{"id": "a"}], "edges": []}, "blocks[0].type must be a non-empty string"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("graph", "problem"), NOT_GRAPHS)
def test_creating_with_something_that_is_not_a_graph_is_400(
    api: APIClient, graph: Any, problem: str
) -> None:
    data = expect(api.post("/api/workflows/", {"name": "x", "graph": graph}, format="json"), 400)
    assert [(e["field"], e["message"]) for e in data["errors"]] == [("graph", problem)]
    assert not Workflow.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("graph", "problem"), NOT_GRAPHS)
def test_saving_something_that_is_not_a_graph_is_400(
    api: APIClient, lead_workflow: Any, graph: Any, problem: str
) -> None:
    response = api.put(
        f"/api/workflows/{lead_workflow.pk}/", {"graph": graph, "base_version": 1}, format="json"
    )
    data = expect(response, 400)
    assert [(e["field"], e["message"]) for e in data["errors"]] == [("graph", problem)]
    assert WorkflowVersion.objects.filter(workflow=lead_workflow).count() == 1


def draft_with_errors() -> dict[str, Any]:
    graph = agent_graph()
    del graph["blocks"][0]["config"]["user_prompt"]
    graph["blocks"].append(
        {
            "id": "get",
            "type": "http",
            "name": "get",
            "config": {"url": "https://example.com/<nowhere.id>"},
        }
    )
    return graph


def assert_draft_errors(data: dict[str, Any]) -> None:
    assert data["validation"]["ok"] is False
    errors = {(e["block"], e["field"]) for e in data["validation"]["errors"]}
    assert ("ask", "user_prompt") in errors
    assert ("get", "url") in errors
    assert all(e["message"] for e in data["validation"]["errors"])


@pytest.mark.django_db
def test_creating_a_draft_with_validation_errors_is_accepted(api: APIClient) -> None:
    data = expect(
        api.post("/api/workflows/", {"name": "draft", "graph": draft_with_errors()}, format="json"),
        201,
    )
    assert data["graph"] == draft_with_errors()
    assert_draft_errors(data)
    assert_draft_errors(expect(api.get(f"/api/workflows/{data['id']}/"), 200))


@pytest.mark.django_db
def test_saving_a_draft_with_validation_errors_is_accepted(
    api: APIClient, lead_workflow: Any
) -> None:
    response = api.put(
        f"/api/workflows/{lead_workflow.pk}/",
        {"graph": draft_with_errors(), "base_version": 1},
        format="json",
    )
    data = expect(response, 200)
    assert data["version"] == 2
    assert_draft_errors(data)


# --- validation --------------------------------------------------------------------------


@pytest.mark.django_db
def test_validate_lists_the_references_in_scope(api: APIClient, lead_workflow: Any) -> None:
    data = expect(api.post(f"/api/workflows/{lead_workflow.pk}/validate/", {}, format="json"), 200)
    assert data["ok"] is True, data["errors"]
    assert data["errors"] == []
    refs = {entry["ref"] for entry in data["scopes"]["agent_merge"]}
    for expected in [
        "lead",
        "loop.index",
        "agent_analysis.content",
        "http_clearbit.body",
        "http_linkedin.body",
    ]:
        assert expected in refs
    assert "agent_analysis.qualification_score" in refs
    assert "env.CLEARBIT_API_KEY" in refs
    assert not [
        r for r in refs if r.startswith(("store_lead", "agent_summary", "slack", "agent_merge"))
    ]
    # Downstream of the loop the loop's aggregate is visible, the body's blocks are not.
    summary_refs = {entry["ref"] for entry in data["scopes"]["agent_summary"]}
    assert {"loop.results", "loop.count", "loop.top_leads"} <= summary_refs
    assert not [
        r for r in summary_refs if r.startswith(("agent_analysis", "http_clearbit", "lead"))
    ]


@pytest.mark.django_db
def test_validate_a_posted_graph_names_block_and_field(api: APIClient, lead_workflow: Any) -> None:
    data = expect(
        api.post(
            f"/api/workflows/{lead_workflow.pk}/validate/",
            {"graph": draft_with_errors()},
            format="json",
        ),
        200,
    )
    assert data["ok"] is False
    assert_draft_errors({"validation": data})
    # The saved graph is untouched by validating another one.
    assert Workflow.objects.get(pk=lead_workflow.pk).current_version.number == 1


@pytest.mark.django_db
def test_missing_secrets_are_validation_errors(api: APIClient) -> None:
    data = expect(api.post(f"/api/templates/{TEMPLATE}/instantiate/", {}, format="json"), 201)
    assert data["validation"]["ok"] is False
    fields = {(e["block"], e["field"]) for e in data["validation"]["errors"]}
    assert fields == {
        ("http_clearbit", "headers.Authorization"),
        ("http_linkedin", "headers.Authorization"),
    }


@pytest.mark.django_db
def test_starting_an_invalid_workflow_is_400_with_errors(api: APIClient) -> None:
    draft = expect(
        api.post("/api/workflows/", {"name": "draft", "graph": draft_with_errors()}, format="json"),
        201,
    )
    data = expect(
        api.post(f"/api/workflows/{draft['id']}/runs/", {"input": {}}, format="json"), 400
    )
    assert {(e["block"], e["field"]) for e in data["errors"]} >= {
        ("ask", "user_prompt"),
        ("get", "url"),
    }
    assert not Run.objects.exists()


# --- catalogue, schema, templates --------------------------------------------------------


@pytest.mark.django_db
def test_block_catalogue_lists_the_nine_types(api: APIClient) -> None:
    blocks = expect(api.get("/api/blocks/"), 200)
    assert {b["type"] for b in blocks} == BLOCK_TYPES
    assert len(blocks) == 9
    for block in blocks:
        assert block["config_schema"]["type"] == "object", block["type"]
        assert isinstance(block["config_schema"]["properties"], dict), block["type"]
        assert isinstance(block["outputs"], dict), block["type"]
        assert block["label"], block["type"]
    by_type = {b["type"]: b for b in blocks}
    assert "user_prompt" in by_type["agent"]["config_schema"]["required"]
    assert "content" in by_type["agent"]["outputs"]["properties"]


@pytest.mark.django_db
def test_openapi_schema_is_served(api: APIClient) -> None:
    response = api.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "openapi:" in text
    every_route = [
        "/api/workflows/:",
        "/api/workflows/{id}/:",
        "/api/workflows/{id}/validate/:",
        "/api/workflows/{id}/duplicate/:",
        "/api/workflows/{id}/runs/:",
        "/api/workflows/{id}/webhook/secret/:",
        "/api/runs/{id}/:",
        "/api/runs/{id}/items/:",
        "/api/runs/{id}/cancel/:",
        "/api/blocks/:",
        "/api/templates/:",
        "/api/templates/{slug}/instantiate/:",
        "/api/secrets/:",
    ]
    for path in every_route:
        assert path in text, path


@pytest.mark.django_db
def test_templates_list_and_instantiate(
    api: APIClient, user: Any, template: dict[str, Any]
) -> None:
    listed = expect(api.get("/api/templates/"), 200)
    entry = next(t for t in listed if t["slug"] == TEMPLATE)
    assert entry["name"] == template["name"]
    assert len(entry["sample"]["leads"]) >= 5
    assert "graph" not in entry

    services.secret_set(owner=user, name="CLEARBIT_API_KEY", value="cb")
    services.secret_set(owner=user, name="LINKEDIN_API_KEY", value="li")
    data = expect(
        api.post(f"/api/templates/{TEMPLATE}/instantiate/", {"name": "My leads"}, format="json"),
        201,
    )
    assert data["name"] == "My leads"
    assert data["template_slug"] == TEMPLATE
    assert data["version"] == 1
    assert data["graph"] == template["graph"]
    assert data["validation"] == {"ok": True, "errors": [], "warnings": []}
    assert Workflow.objects.get(pk=data["id"]).owner == user

    default = expect(api.post(f"/api/templates/{TEMPLATE}/instantiate/", {}, format="json"), 201)
    assert default["name"] == template["name"]
    expect(api.post("/api/templates/no-such-template/instantiate/", {}, format="json"), 404)
    assert Workflow.objects.count() == 2


@pytest.mark.django_db
def test_duplicate_copies_the_current_graph(
    api: APIClient, lead_workflow: Any, template: dict[str, Any]
) -> None:
    copy_ = expect(
        api.post(f"/api/workflows/{lead_workflow.pk}/duplicate/", {}, format="json"), 201
    )
    source = expect(api.get(f"/api/workflows/{lead_workflow.pk}/"), 200)
    assert copy_["id"] != source["id"]
    assert copy_["name"] == "Parallel Lead Enrichment (copy)"
    assert copy_["graph"] == source["graph"] == template["graph"]
    assert copy_["version"] == 1
    assert copy_["webhook_url"] != source["webhook_url"]
    assert copy_["validation"]["ok"] is True
    # A template's copy keeps its template: the Run panel prefills the sample input.
    assert copy_["template_slug"] == source["template_slug"] == "parallel-lead-enrichment"
    assert {w["id"] for w in expect(api.get("/api/workflows/"), 200)} == {copy_["id"], source["id"]}


@pytest.mark.django_db
def test_webhook_secret_is_shown_once(api: APIClient, client: Any, lead_workflow: Any) -> None:
    pk = lead_workflow.pk
    first = expect(api.post(f"/api/workflows/{pk}/webhook/secret/", {}, format="json"), 201)
    secret = first["signing_secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    for path in [f"/api/workflows/{pk}/", "/api/workflows/"]:
        response = api.get(path)
        expect(response, 200)
        assert secret not in response.content.decode()
    assert secret not in Webhook.objects.get(workflow_id=pk).signing_secret_encrypted
    # The hook now demands a signature made with this secret.
    body = json.dumps({"leads": []}).encode()
    hook = f"/hooks/{lead_workflow.webhook.token}"
    assert client.post(hook, data=body, content_type="application/json").status_code == 401
    header = {"X-Klyntos-Signature": sign_payload(secret, body, int(time.time()))}
    assert (
        client.post(hook, data=body, content_type="application/json", headers=header).status_code
        == 202
    )

    second = expect(api.post(f"/api/workflows/{pk}/webhook/secret/", {}, format="json"), 201)
    assert second["signing_secret"] != secret


# --- secrets -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_secrets_are_write_only(api: APIClient, other_api: APIClient) -> None:
    value = "s3cr3t-value-that-must-not-come-back"
    created = expect(
        api.post("/api/secrets/", {"name": "CRM_TOKEN", "value": value}, format="json"), 201
    )
    assert created == {"name": "CRM_TOKEN"}
    listed = expect(api.get("/api/secrets/"), 200)
    assert [s["name"] for s in listed] == ["CRM_TOKEN"]
    assert set(listed[0]) == {"name", "updated_at", "workflows"}
    assert value not in api.get("/api/secrets/").content.decode()
    assert expect(other_api.get("/api/secrets/"), 200) == []

    expect(api.post("/api/secrets/", {"name": "CRM_TOKEN", "value": "rotated"}, format="json"), 201)
    assert [s["name"] for s in expect(api.get("/api/secrets/"), 200)] == ["CRM_TOKEN"]
    bad = expect(
        api.post("/api/secrets/", {"name": "1-bad name", "value": "x"}, format="json"), 400
    )
    assert "name" in bad
    short = expect(api.post("/api/secrets/", {"name": "PIN", "value": "123"}, format="json"), 400)
    assert short["value"] == [
        "a secret is at least 4 characters: shorter values could not be masked in outputs and logs"
    ]
    assert [s["name"] for s in expect(api.get("/api/secrets/"), 200)] == ["CRM_TOKEN"]


# --- runs against the simulator ----------------------------------------------------------


def start_run(api: APIClient, workflow: Any, leads: list[dict[str, Any]]) -> dict[str, Any]:
    started = expect(
        api.post(f"/api/workflows/{workflow.pk}/runs/", {"input": {"leads": leads}}, format="json"),
        201,
    )
    assert started["workflow"] == workflow.pk
    assert started["workflow_version"] == 1
    assert started["trigger"] == "api"
    return started


def all_items(api: APIClient, run_id: str) -> list[dict[str, Any]]:
    """Every item with its steps: the cursor pages, then each item's detail (`key`)."""
    items, cursor = [], None
    while True:
        page = expect(
            api.get(f"/api/runs/{run_id}/items/", {"cursor": cursor} if cursor else {}), 200
        )
        items += page["results"]
        cursor = page["next"]
        if not cursor:
            break
    return [
        expect(api.get(f"/api/runs/{run_id}/items/", {"key": i["key"]}), 200)["results"][0]
        for i in items
    ]


@REAL_RUN
def test_run_of_five_leads_succeeds_with_progress_and_items(
    api: APIClient,
    other_api: APIClient,
    providers: Any,
    finish_run: Any,
    lead_workflow: Any,
    leads: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = start_run(api, lead_workflow, leads)
    finish_run(started["id"])

    run = expect(api.get(f"/api/runs/{started['id']}/"), 200)
    assert run["status"] == "succeeded", run
    assert run["progress"] == {
        "total": 5,
        "succeeded": 5,
        "failed": 0,
        "cancelled": 0,
        "not_started": 0,
        "running": 0,
    }
    assert run["error"] == ""
    assert run["finished_at"] and run["duration"] is not None
    assert len(run["outputs"]["loop"]["top_leads"]) == 5

    stats = providers.control.stats()["requests"]
    assert stats["clearbit"] == 5 and stats["linkedin"] == 5
    assert stats["openai"] == 11  # analysis + merge per lead, one summary
    assert stats["slack"] == 1

    # Cancelling a run that already finished changes nothing.
    assert expect(api.post(f"/api/runs/{started['id']}/cancel/", {}, format="json"), 200)[
        "status"
    ] == ("succeeded")

    listed = expect(api.get(f"/api/workflows/{lead_workflow.pk}/runs/"), 200)
    assert [r["id"] for r in listed["results"]] == [started["id"]]
    assert listed["results"][0]["status"] == "succeeded"

    first = expect(api.get(f"/api/runs/{started['id']}/items/", {"limit": 2}), 200)
    assert first["count"] == 5
    assert len(first["results"]) == 2
    assert first["next"]
    items = all_items(api, started["id"])
    assert [i["index"] for i in items] == [0, 1, 2, 3, 4]
    assert [i["data"] for i in items] == leads
    for item in items:
        assert item["status"] == "succeeded"
        assert item["loop_block"] == "loop"
        steps = {s["block_id"]: s for s in item["steps"]}
        assert set(steps) == {
            "agent_analysis",
            "http_clearbit",
            "http_linkedin",
            "agent_merge",
            "store_lead",
        }
        assert all(s["status"] == "succeeded" for s in steps.values())
        score = steps["agent_analysis"]["output"]["qualification_score"]
        assert isinstance(score, int) and 1 <= score <= 10
        assert steps["http_clearbit"]["output"]["status"] == 200
        assert steps["store_lead"]["output"]["rowcount"] == 1

    assert expect(api.get(f"/api/runs/{started['id']}/items/?status=succeeded"), 200)["count"] == 5
    assert expect(api.get(f"/api/runs/{started['id']}/items/?status=failed"), 200)["count"] == 0
    expect(other_api.get(f"/api/runs/{started['id']}/items/"), 404)
    expect(other_api.get(f"/api/runs/{started['id']}/"), 404)


@REAL_RUN
def test_secret_values_appear_in_no_response(
    api: APIClient,
    providers: Any,
    finish_run: Any,
    lead_workflow: Any,
    lead_secrets: dict[str, str],
    leads: list[dict[str, Any]],
) -> None:
    clearbit = "cb-posted-through-the-api-51d0c3"
    expect(
        api.post("/api/secrets/", {"name": "CLEARBIT_API_KEY", "value": clearbit}, format="json"),
        201,
    )
    bodies = [api.get("/api/secrets/").content]

    started = start_run(api, lead_workflow, leads)
    finish_run(started["id"])
    run_id = started["id"]
    assert expect(api.get(f"/api/runs/{run_id}/"), 200)["status"] == "succeeded"

    received = providers.control.stats()["received"]
    sent = {
        (r["endpoint"], r["authorization"])
        for r in received
        if r["endpoint"] in ("clearbit", "linkedin")
    }
    assert sent == {
        ("clearbit", f"Bearer {clearbit}"),
        ("linkedin", f"Bearer {lead_secrets['LINKEDIN_API_KEY']}"),
    }

    for path in [
        f"/api/workflows/{lead_workflow.pk}/",
        "/api/workflows/",
        f"/api/workflows/{lead_workflow.pk}/runs/",
        f"/api/runs/{run_id}/",
        f"/api/runs/{run_id}/items/",
        "/api/secrets/",
    ]:
        response = api.get(path)
        expect(response, 200)
        bodies.append(response.content)
    bodies.append(
        api.post(f"/api/workflows/{lead_workflow.pk}/validate/", {}, format="json").content
    )
    bodies.append(api.post(f"/api/runs/{run_id}/cancel/", {}, format="json").content)
    for body in bodies:
        text = body.decode()
        assert clearbit not in text
        assert lead_secrets["LINKEDIN_API_KEY"] not in text
        assert lead_secrets["CLEARBIT_API_KEY"] not in text


@REAL_RUN
def test_cancel_a_run_held_at_the_simulator(
    api: APIClient,
    providers: Any,
    finish_run: Any,
    wait_for: Any,
    lead_workflow: Any,
    leads: list[dict[str, Any]],
) -> None:
    providers.control.configure(hold=[{"endpoint": "clearbit"}])
    started = start_run(api, lead_workflow, leads)
    run_id = started["id"]
    wait_for(
        lambda: providers.control.stats()["held"]["clearbit"] == 5,
        what="5 clearbit calls to be held",
    )
    # The store writes events in batches (every 0.1 s): poll until the row says so.
    wait_for(
        lambda: expect(api.get(f"/api/runs/{run_id}/"), 200)["status"] == "running", what="running"
    )

    cancelled = expect(api.post(f"/api/runs/{run_id}/cancel/", {}, format="json"), 200)
    assert cancelled["id"] == run_id
    final = finish_run(run_id)
    assert final.status == "cancelled"
    providers.control.release()  # answers nobody waits for any more

    run = expect(api.get(f"/api/runs/{run_id}/"), 200)
    assert run["status"] == "cancelled"
    assert run["finished_at"]
    assert run["progress"]["running"] == 0
    assert run["progress"]["succeeded"] == 0
    assert providers.control.stats()["requests"]["slack"] == 0
    # Cancelling a finished run is harmless.
    again = expect(api.post(f"/api/runs/{run_id}/cancel/", {}, format="json"), 200)
    assert again["status"] == "cancelled"


@REAL_RUN
def test_cancel_response_reports_the_cancelled_run(
    api: APIClient,
    providers: Any,
    finish_run: Any,
    wait_for: Any,
    lead_workflow: Any,
    leads: list[dict[str, Any]],
) -> None:
    """BUG: run_cancel() cancels the executor future and re-reads the row at once, before the
    executor thread has stored the cancellation, so the 200 answer still says "running"."""
    providers.control.configure(hold=[{"endpoint": "clearbit"}])
    run_id = start_run(api, lead_workflow, leads)["id"]
    wait_for(
        lambda: expect(api.get(f"/api/runs/{run_id}/"), 200)["status"] == "running", what="running"
    )
    cancelled = expect(api.post(f"/api/runs/{run_id}/cancel/", {}, format="json"), 200)
    assert finish_run(run_id).status == "cancelled"
    assert (cancelled["status"], bool(cancelled["finished_at"])) == ("cancelled", True), (
        f"POST /api/runs/<id>/cancel/ answered status {cancelled['status']!r} for a run it cancelled"
    )


@REAL_RUN
def test_a_secret_a_block_outputs_is_redacted_in_every_response(
    api: APIClient, providers: Any, finish_run: Any
) -> None:
    value = "tok-echoed-by-a-transform-9c1e"
    expect(api.post("/api/secrets/", {"name": "CRM_TOKEN", "value": value}, format="json"), 201)
    graph = {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {
                "id": "each",
                "type": "loop",
                "name": "each",
                "config": {"items": "<hook.body.ids>", "variable": "row"},
            },
            {
                "id": "echo",
                "type": "transform",
                "name": "echo",
                "parent": "each",
                "config": {"input": {"key": "<env.CRM_TOKEN>", "id": "<row>"}, "expression": "key"},
            },
        ],
        "edges": [
            {"source": "hook", "target": "each"},
            {"source": "each", "target": "echo", "handle": "body"},
        ],
    }
    workflow = expect(
        api.post("/api/workflows/", {"name": "echo", "graph": graph}, format="json"), 201
    )
    assert workflow["validation"] == {"ok": True, "errors": [], "warnings": []}
    started = expect(
        api.post(
            f"/api/workflows/{workflow['id']}/runs/", {"input": {"ids": [1, 2]}}, format="json"
        ),
        201,
    )
    finish_run(started["id"])
    run = expect(api.get(f"/api/runs/{started['id']}/"), 200)
    assert run["status"] == "succeeded", run
    items = all_items(api, started["id"])
    outputs = [step["output"] for item in items for step in item["steps"]]
    assert outputs == [{"result": "[redacted]"}, {"result": "[redacted]"}]
    for path in [f"/api/runs/{started['id']}/", f"/api/runs/{started['id']}/items/"]:
        assert value not in api.get(path).content.decode()


# --- hostile input: always a 4xx, never a 500 ----------------------------------------------

JSON = "application/json"


def post_raw(api: APIClient, url: str, raw: bytes, method: str = "post") -> Any:
    return getattr(api, method)(url, data=raw, content_type=JSON)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "fragment"),
    [(r"a\u0000b", "NUL character"), (r"\ud800", "unpaired surrogate")],
)
def test_strings_jsonb_cannot_store_are_400_on_every_endpoint(
    api: APIClient, lead_workflow: Any, text: str, fragment: str
) -> None:
    pk = lead_workflow.pk
    graph = {
        "blocks": [{"id": "a", "type": "agent", "name": "a", "config": {"user_prompt": "TEXT"}}],
        "edges": [],
    }
    bodies = [
        ("post", f"/api/workflows/{pk}/runs/", {"input": {"leads": [], "note": "TEXT"}}),
        ("post", "/api/workflows/", {"name": "x", "graph": graph}),
        ("put", f"/api/workflows/{pk}/", {"base_version": 1, "graph": graph}),
        ("post", f"/api/workflows/{pk}/validate/", {"graph": graph}),
        ("post", "/api/secrets/", {"name": "K", "value": "TEXT"}),
    ]
    # The escape is spliced into the JSON text, as a client would send it.
    attempts = [(m, url, json.dumps(body).replace("TEXT", text)) for m, url, body in bodies]
    for method, url, raw in attempts:
        data = expect(post_raw(api, url, raw.encode(), method), 400)
        assert fragment in data["detail"], (url, data)
    assert Run.objects.count() == 0
    assert WorkflowVersion.objects.filter(workflow=lead_workflow).count() == 1


@pytest.mark.django_db
def test_a_deeply_nested_rest_body_is_400_before_parsing(
    api: APIClient, lead_workflow: Any, settings: Any
) -> None:
    url = f"/api/workflows/{lead_workflow.pk}/runs/"
    data = expect(post_raw(api, url, b"[" * 100_000 + b"]" * 100_000), 400)
    assert data["detail"] == f"JSON nesting deeper than {settings.KLYNTOS_WEBHOOK_MAX_DEPTH} levels"
    depth = settings.KLYNTOS_WEBHOOK_MAX_DEPTH
    too_deep = b'{"input": ' + b"[" * depth + b"]" * depth + b"}"
    expect(post_raw(api, url, too_deep), 400)
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_the_rest_api_takes_json_only(api: APIClient) -> None:
    response = api.post("/api/workflows/", {"name": "form post"})  # multipart
    assert response.status_code == 415
    assert not Workflow.objects.exists()


@pytest.mark.django_db
def test_run_items_filters_are_validated(
    api: APIClient, lead_workflow: Any, leads: list[dict[str, Any]]
) -> None:
    run, _ = services.run_create(workflow=lead_workflow, input={"leads": leads})
    url = f"/api/runs/{run.pk}/items/"
    for query in ("status=%00", "status=bogus", "key=a%00"):
        data = expect(api.get(f"{url}?{query}"), 400)
        assert set(data) <= {"status", "key"}, data
    for query in ("status=failed", "status=cancelled", "key=loop[0]", "status=&key="):
        assert expect(api.get(f"{url}?{query}"), 200)["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": "n" * 201}, "name"), (["x"], "non_field_errors"), ("x", "non_field_errors")],
)
def test_template_instantiate_validates_its_body(
    api: APIClient, template: dict[str, Any], body: Any, field: str
) -> None:
    data = expect(api.post(f"/api/templates/{TEMPLATE}/instantiate/", body, format="json"), 400)
    assert field in data
    assert not Workflow.objects.exists()
    blank = expect(
        api.post(f"/api/templates/{TEMPLATE}/instantiate/", {"name": ""}, format="json"), 201
    )
    assert blank["name"] == template["name"]


HOSTILE_BLOCKS: list[tuple[dict[str, Any], str]] = [
    (
        {"type": "agent", "config": {"user_prompt": "hi", "response_format": True}},
        "response_format",
    ),
    (
        {
            "type": "agent",
            "config": {
                "user_prompt": "hi",
                "response_format": {"type": "object", "properties": {"a": {"$ref": "#/x"}}},
            },
        },
        "response_format",
    ),
    (
        {"type": "loop", "config": {"items": "<webhook.body.leads>", "aggregations": ["a"]}},
        "aggregations",
    ),
    (
        {"type": "loop", "config": {"items": "<webhook.body.leads>", "aggregations": "abc"}},
        "aggregations",
    ),
    ({"type": "webhook", "config": {"body_schema": {"properties": ["a"]}}}, "body_schema"),
    ({"type": "webhook", "config": {"body_schema": {"type": 5}}}, "body_schema"),
    ({"type": "webhook", "config": {"body_schema": {"$ref": "#/nope"}}}, "body_schema"),
    (
        {"type": "webhook", "config": {"body_schema": {"$ref": "http://169.254.169.254/x"}}},
        "body_schema",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("hostile", "field"), HOSTILE_BLOCKS)
def test_hostile_block_configs_never_give_a_500(
    api: APIClient, client: Any, hostile: dict[str, Any], field: str
) -> None:
    trigger = {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}
    target = {"id": "b", "name": "b", **hostile}
    blocks = [target] if hostile["type"] == "webhook" else [trigger, target]
    reader = {
        "id": "t",
        "type": "transform",
        "name": "t",
        "config": {"input": "<b.some.field>", "expression": "@"},
    }
    graph = {"blocks": [*blocks, reader], "edges": [{"source": "b", "target": "t"}]}
    if hostile["type"] != "webhook":
        graph["edges"].append({"source": "webhook", "target": "b"})

    created = expect(api.post("/api/workflows/", {"name": "h", "graph": graph}, format="json"), 201)
    pk = created["id"]
    issues = {(e["block"], e["field"]) for e in created["validation"]["errors"]}
    assert ("b", field) in issues, created["validation"]
    expect(api.get(f"/api/workflows/{pk}/"), 200)
    expect(api.get("/api/workflows/"), 200)
    saved = expect(
        api.put(f"/api/workflows/{pk}/", {"graph": graph, "base_version": 1}, format="json"), 200
    )
    # (the same graph again: saved without a new version, and still no 500)
    assert saved["version"] == 1 and saved["validation"]["ok"] is False
    validated = expect(api.post(f"/api/workflows/{pk}/validate/", {}, format="json"), 200)
    assert validated["ok"] is False
    refused = expect(
        api.post(f"/api/workflows/{pk}/runs/", {"input": {"leads": []}}, format="json"), 400
    )
    assert ("b", field) in {(e["block"], e["field"]) for e in refused["errors"]}
    webhook = Workflow.objects.get(pk=pk).webhook
    hook = client.post(f"/hooks/{webhook.token}", data=b'{"leads": []}', content_type=JSON)
    assert hook.status_code == 409
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_saving_an_unchanged_graph_makes_no_new_version_and_signing_is_reported(
    api: APIClient, user: Any
) -> None:
    graph = {"blocks": [{"id": "w", "type": "webhook", "name": "w", "config": {}}], "edges": []}
    created = expect(
        api.post("/api/workflows/", {"name": "same", "graph": graph}, format="json"), 201
    )
    again = expect(
        api.put(
            f"/api/workflows/{created['id']}/", {"graph": graph, "base_version": 1}, format="json"
        ),
        200,
    )
    assert again["version"] == 1 and created["webhook_signed"] is False
    expect(api.post(f"/api/workflows/{created['id']}/webhook/secret/"), 201)
    assert expect(api.get(f"/api/workflows/{created['id']}/"), 200)["webhook_signed"] is True


@pytest.mark.django_db
def test_a_workflow_says_how_large_a_body_its_webhook_takes(api: APIClient, settings: Any) -> None:
    """The Webhook tab warns before a post the server would refuse (a 10,000-lead batch is
    1.8 MB, past the 1 MB default)."""
    settings.KLYNTOS_WEBHOOK_MAX_BYTES = 4096
    graph = {"blocks": [{"id": "w", "type": "webhook", "name": "w", "config": {}}], "edges": []}
    created = expect(
        api.post("/api/workflows/", {"name": "big", "graph": graph}, format="json"), 201
    )
    assert created["webhook_max_bytes"] == 4096
    assert expect(api.get(f"/api/workflows/{created['id']}/"), 200)["webhook_max_bytes"] == 4096


def brief_summary_graph(template: dict[str, Any]) -> dict[str, Any]:
    """The template with the product brief's summary prompt: the whole `<loop.results>`."""
    graph = copy.deepcopy(template["graph"])
    summary = next(b for b in graph["blocks"] if b["id"] == "agent_summary")
    summary["config"]["user_prompt"] = "Processed <loop.count> leads\nResults: <loop.results>"
    slack = next(b for b in graph["blocks"] if b["id"] == "slack")
    slack["config"]["text"] += "\nAll leads: <webhook.body.leads>"
    return graph


@REAL_RUN
def test_a_growing_list_in_a_prompt_or_slack_text_is_a_warning_not_an_error(
    api: APIClient,
    providers: Any,
    finish_run: Any,
    lead_workflow: Any,
    template: dict[str, Any],
    leads: list[dict[str, Any]],
) -> None:
    graph = brief_summary_graph(template)
    checked = expect(
        api.post(f"/api/workflows/{lead_workflow.pk}/validate/", {"graph": graph}, format="json"),
        200,
    )
    assert checked["ok"] is True and checked["errors"] == []
    warnings = {(w["block_id"], w["field"]): w["message"] for w in checked["warnings"]}
    assert set(warnings) == {("agent_summary", "user_prompt"), ("slack", "text")}
    assert warnings["agent_summary", "user_prompt"].startswith("<loop.results> holds a list")
    assert "<loop.top_leads>" in warnings["agent_summary", "user_prompt"]
    assert warnings["slack", "text"].startswith("<webhook.body.leads> holds the whole list")
    assert all(w["block"] == w["block_id"] for w in checked["warnings"])

    # The workflow saves (the answer and later reads carry the warnings) and runs.
    saved = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": 1},
            format="json",
        ),
        200,
    )
    assert saved["validation"]["ok"] is True
    assert saved["validation"]["warnings"] == checked["warnings"]
    read = expect(api.get(f"/api/workflows/{lead_workflow.pk}/"), 200)
    assert read["validation"] == saved["validation"]
    started = expect(
        api.post(
            f"/api/workflows/{lead_workflow.pk}/runs/", {"input": {"leads": leads}}, format="json"
        ),
        201,
    )
    assert finish_run(started["id"]).status == "succeeded"

    # The shipped template itself has none.
    clean = expect(api.post(f"/api/workflows/{lead_workflow.pk}/validate/", {}, format="json"), 200)
    assert clean["warnings"] != [] and clean["ok"]  # the saved (brief) version still warns
    fresh = expect(
        api.post("/api/templates/parallel-lead-enrichment/instantiate/", {}, format="json"), 201
    )
    assert fresh["validation"] == {"ok": True, "errors": [], "warnings": []}


@pytest.mark.django_db
def test_a_name_with_bidi_controls_is_refused_with_where(
    api: APIClient, lead_workflow: Any
) -> None:
    # "‹img›\u202eevil" would show as "‹img›live" in the header, the list and History.
    data = expect(api.post("/api/workflows/", {"name": "a\u202eevil"}, format="json"), 400)
    assert "U+202E at 1" in data["name"][0]
    url = f"/api/workflows/{lead_workflow.pk}/"
    data = expect(api.put(url, {"name": "\u2066x"}, format="json"), 400)
    assert "U+2066 at 0" in data["name"][0]
    lead_workflow.refresh_from_db()
    assert "\u2066" not in lead_workflow.name
    renamed = expect(api.put(url, {"name": "שלום leads"}, format="json"), 200)
    assert renamed["name"] == "שלום leads"  # right-to-left text itself is welcome
