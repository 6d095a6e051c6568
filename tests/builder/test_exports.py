"""Export and import of a workflow as a file (secrets by name only), and which workflows
read each secret."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from builder import exports, services
from tests.builder.conftest import CLEARBIT_KEY, LINKEDIN_KEY


def expect(response: Any, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.content[:500])
    return response.json() if response.content else None


@pytest.mark.django_db
def test_export_then_import_gives_an_equal_graph_and_no_secret_value(
    api: APIClient, lead_workflow: Any
) -> None:
    response = api.get(f"/api/workflows/{lead_workflow.pk}/export/")
    document = expect(response, 200)
    filename = exports.export_filename(lead_workflow.name)
    assert filename.endswith(".klyntos.json") and " " not in filename
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    text = response.content.decode()
    assert CLEARBIT_KEY not in text and LINKEDIN_KEY not in text
    assert document["kind"] == "klyntos/workflow" and document["format"] == 1
    assert document["name"] == lead_workflow.name
    assert document["secrets"] == ["CLEARBIT_API_KEY", "LINKEDIN_API_KEY"]
    saved = expect(api.get(f"/api/workflows/{lead_workflow.pk}/"), 200)["graph"]
    assert document["graph"] == saved

    # Import: a new workflow of the caller's, with the same graph, validated.
    created = expect(
        api.post(
            "/api/workflows/",
            {
                "name": document["name"],
                "description": document["description"],
                "graph": document["graph"],
            },
            format="json",
        ),
        201,
    )
    assert created["id"] != lead_workflow.pk
    assert created["graph"] == saved
    assert created["validation"] == {"ok": True, "errors": [], "warnings": []}


@pytest.mark.django_db
def test_a_secret_value_typed_into_the_graph_is_masked_in_the_export(
    api: APIClient, lead_workflow: Any
) -> None:
    graph = copy.deepcopy(lead_workflow.current_version.graph)
    http = next(b for b in graph["blocks"] if b["name"] == "http_clearbit")
    http["config"]["headers"] = {"Authorization": f"Bearer {CLEARBIT_KEY}"}
    services.workflow_save(workflow=lead_workflow, graph=graph, base_version=1)
    text = api.get(f"/api/workflows/{lead_workflow.pk}/export/").content.decode()
    assert CLEARBIT_KEY not in text
    document = json.loads(text)
    exported = next(b for b in document["graph"]["blocks"] if b["name"] == "http_clearbit")
    assert exported["config"]["headers"]["Authorization"] == "Bearer [redacted]"
    # The secret it no longer references by name is not listed.
    assert document["secrets"] == ["LINKEDIN_API_KEY"]


@pytest.mark.django_db
def test_an_import_that_is_not_a_graph_is_refused(api: APIClient) -> None:
    refused = expect(
        api.post("/api/workflows/", {"name": "x", "graph": {"blocks": {}}}, format="json"), 400
    )
    assert refused["errors"][0]["message"] == "'blocks' and 'edges' must be lists"


def test_secret_names_in_reads_env_references_only() -> None:
    graph = {
        "blocks": [
            {"config": {"a": "<env.B_KEY> and <env.A_KEY.x>", "b": ["<env.B_KEY>", "<envx.C>"]}},
            {"config": {"h": {"x": "<env>"}}},
            "not a block",
        ]
    }
    assert exports.secret_names_in(graph) == ["A_KEY", "B_KEY"]
    assert exports.secret_names_in({"blocks": "no"}) == []
    assert exports.secret_names_in([]) == []


def test_export_filename_is_safe() -> None:
    assert exports.export_filename('a/b "c"\n') == "a-b-c.klyntos.json"
    assert exports.export_filename("///") == "workflow.klyntos.json"


@pytest.mark.django_db
def test_secrets_list_which_workflows_read_them_and_can_be_deleted(
    api: APIClient, other_api: APIClient, lead_workflow: Any
) -> None:
    expect(api.post("/api/secrets/", {"name": "UNUSED", "value": "v-unused-1"}, format="json"), 201)
    listed = expect(api.get("/api/secrets/"), 200)
    used = {s["name"]: s["workflows"] for s in listed}
    ref = [{"id": lead_workflow.pk, "name": lead_workflow.name, "draft": True, "live": True}]
    assert used == {"CLEARBIT_API_KEY": ref, "LINKEDIN_API_KEY": ref, "UNUSED": []}
    assert "v-unused-1" not in json.dumps(listed)

    assert expect(other_api.delete("/api/secrets/UNUSED/"), 404) == {"detail": "no such secret"}
    expect(api.delete("/api/secrets/UNUSED/"), 204)
    expect(api.delete("/api/secrets/UNUSED/"), 404)
    assert [s["name"] for s in expect(api.get("/api/secrets/"), 200)] == [
        "CLEARBIT_API_KEY",
        "LINKEDIN_API_KEY",
    ]


@pytest.mark.django_db
def test_a_secret_only_the_live_version_reads_is_in_use_and_not_deleted_unasked(
    api: APIClient, lead_workflow: Any
) -> None:
    """A draft without the secret does not make it unused: the live version still runs every
    webhook call, and deleting the secret would get them refused."""
    graph = copy.deepcopy(lead_workflow.current_version.graph)
    for block in graph["blocks"]:
        if block["id"] == "http_clearbit":
            block["config"]["headers"] = {"Authorization": "Bearer not-a-secret"}
    expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": 1},
            format="json",
        ),
        200,
    )
    used = {s["name"]: s["workflows"] for s in expect(api.get("/api/secrets/"), 200)}
    assert used["CLEARBIT_API_KEY"] == [
        {"id": lead_workflow.pk, "name": lead_workflow.name, "draft": False, "live": True}
    ]

    refused = expect(api.delete("/api/secrets/CLEARBIT_API_KEY/"), 409)
    assert refused["error"].startswith(
        f"CLEARBIT_API_KEY is read by the live version of '{lead_workflow.name}': deleting it"
    )
    assert "?force=true" in refused["error"]
    assert [w["id"] for w in refused["workflows"]] == [lead_workflow.pk]
    assert "CLEARBIT_API_KEY" in [s["name"] for s in expect(api.get("/api/secrets/"), 200)]
    expect(api.delete("/api/secrets/CLEARBIT_API_KEY/?force=true"), 204)
    assert "CLEARBIT_API_KEY" not in [s["name"] for s in expect(api.get("/api/secrets/"), 200)]
    expect(api.delete("/api/secrets/CLEARBIT_API_KEY/?force=true"), 404)


@pytest.mark.django_db
def test_notes_are_saved_exported_and_never_read_as_references(
    api: APIClient, lead_workflow: Any, settings: Any
) -> None:
    graph = copy.deepcopy(lead_workflow.current_version.graph)
    note = {
        "id": "note_1",
        "text": "Uses <env.SOMETHING_ELSE> — just words",
        "position": {"x": 10, "y": 20},
        "size": {"width": 220, "height": 120},
    }
    graph["notes"] = [note]
    saved = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": 1},
            format="json",
        ),
        200,
    )
    assert saved["graph"]["notes"] == [note]
    assert saved["validation"] == {"ok": True, "errors": [], "warnings": []}
    document = expect(api.get(f"/api/workflows/{lead_workflow.pk}/export/"), 200)
    assert document["graph"]["notes"] == [note]
    assert "SOMETHING_ELSE" not in document["secrets"]

    settings.KLYNTOS_MAX_NOTES = 1
    refused = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": {**graph, "notes": [note, {**note, "id": "note_2"}]}, "base_version": 2},
            format="json",
        ),
        400,
    )
    assert refused == {
        "error": "the workflow has 2 notes; the limit is 1 (KLYNTOS_MAX_NOTES)",
        "limit": "KLYNTOS_MAX_NOTES",
    }
    bad = expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": {**graph, "notes": [{"text": "x"}]}, "base_version": 2},
            format="json",
        ),
        400,
    )
    assert bad["errors"][0]["message"] == "notes[0] needs a string 'id' and 'text'"


@pytest.mark.django_db
def test_referenced_secrets_that_are_not_set_are_listed_on_request(
    api: APIClient, other_api: APIClient, lead_workflow: Any
) -> None:
    expect(api.delete("/api/secrets/LINKEDIN_API_KEY/?force=true"), 204)
    plain = expect(api.get("/api/secrets/"), 200)
    assert [s["name"] for s in plain] == ["CLEARBIT_API_KEY"]
    listed = expect(api.get("/api/secrets/?referenced=1"), 200)
    ref = [{"id": lead_workflow.pk, "name": lead_workflow.name, "draft": True, "live": True}]
    assert listed[1:] == [{"name": "LINKEDIN_API_KEY", "workflows": ref, "missing": True}]
    assert "missing" not in listed[0]
    # Owner-scoped: another user's workflows name nothing here.
    assert expect(other_api.get("/api/secrets/?referenced=1"), 200) == []


@pytest.mark.django_db
def test_pins_stay_home_unless_asked_for_and_import_keeps_them(
    api: APIClient, lead_workflow: Any
) -> None:
    graph = copy.deepcopy(lead_workflow.current_version.graph)
    graph["blocks"][2]["pin"] = {"output": {"content": "pinned", "qualification_score": 7}}
    expect(
        api.put(
            f"/api/workflows/{lead_workflow.pk}/",
            {"graph": graph, "base_version": 1},
            format="json",
        ),
        200,
    )
    plain = expect(api.get(f"/api/workflows/{lead_workflow.pk}/export/"), 200)
    assert all("pin" not in b for b in plain["graph"]["blocks"])
    assert plain["graph"] == exports.without_pins(graph)
    kept = expect(api.get(f"/api/workflows/{lead_workflow.pk}/export/?pins=1"), 200)
    assert kept["graph"] == graph
    created = expect(
        api.post("/api/workflows/", {"name": "copy", "graph": kept["graph"]}, format="json"), 201
    )
    assert created["graph"]["blocks"][2]["pin"] == graph["blocks"][2]["pin"]
