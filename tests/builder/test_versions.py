"""Drafts, publishing and versions over the REST API: a save never changes what production
runs, publish needs a valid graph, versions are listed, diffed and restored."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from builder.models import Workflow
from engine.models import Run
from tests.builder.test_api import expect

pytestmark = pytest.mark.django_db


def save(api: APIClient, workflow: dict[str, Any], graph: Any, **extra: Any) -> dict[str, Any]:
    body = {"graph": graph, "base_version": workflow["version"], **extra}
    return expect(api.put(f"/api/workflows/{workflow['id']}/", body, format="json"), 200)


def post_hook(workflow: Workflow, body: Any) -> Any:
    return Client().post(
        f"/hooks/{workflow.webhook.token}", data=json.dumps(body), content_type="application/json"
    )


def with_prompt(graph: dict[str, Any], prompt: str) -> dict[str, Any]:
    changed = copy.deepcopy(graph)
    block = next(b for b in changed["blocks"] if b["id"] == "agent_summary")
    block["config"]["user_prompt"] = prompt
    return changed


def broken(graph: dict[str, Any]) -> dict[str, Any]:
    """The template with a reference to a block that does not exist."""
    return with_prompt(graph, "Summarise <nowhere.text>")


def test_a_saved_draft_never_changes_what_the_webhook_runs(
    api: APIClient, lead_workflow: Workflow, leads: list[dict[str, Any]]
) -> None:
    pk = lead_workflow.pk
    v1 = expect(api.get(f"/api/workflows/{pk}/"), 200)
    assert (v1["version"], v1["published_version"], v1["draft_differs"]) == (1, 1, False)

    v2 = save(api, v1, with_prompt(v1["graph"], "Write a two-line summary."), message="shorter")
    v2 = expect(api.post(f"/api/workflows/{pk}/publish/", {"message": "go"}, format="json"), 200)
    assert (v2["version"], v2["published_version"], v2["draft_differs"]) == (2, 2, False)

    v3 = save(api, v2, broken(v2["graph"]))
    assert (v3["version"], v3["published_version"], v3["draft_differs"]) == (3, 2, True)
    assert v3["validation"]["ok"] is False

    answer = post_hook(lead_workflow, {"leads": leads})
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(pk=answer.json()["run_id"])
    assert run.version.number == 2 and run.trigger == "webhook"

    refused = expect(api.post(f"/api/workflows/{pk}/publish/", {}, format="json"), 400)
    assert refused["error"] == "the workflow is not valid"
    assert any("nowhere" in e["message"] for e in refused["errors"]), refused
    assert expect(api.get(f"/api/workflows/{pk}/"), 200)["published_version"] == 2


def test_rest_runs_the_published_version_and_the_editor_tests_the_draft(
    api: APIClient, lead_workflow: Workflow, leads: list[dict[str, Any]]
) -> None:
    pk = lead_workflow.pk
    v1 = expect(api.get(f"/api/workflows/{pk}/"), 200)
    save(api, v1, with_prompt(v1["graph"], "Draft prompt <loop.count>"))
    production = expect(
        api.post(f"/api/workflows/{pk}/runs/", {"input": {"leads": leads}}, format="json"), 201
    )
    assert (production["workflow_version"], production["draft"], production["trigger"]) == (
        1,
        False,
        "api",
    )
    test_run = expect(
        api.post(
            f"/api/workflows/{pk}/runs/",
            {"input": {"leads": leads}, "version": "draft", "trigger": "editor"},
            format="json",
        ),
        201,
    )
    assert (test_run["workflow_version"], test_run["draft"], test_run["trigger"]) == (
        2,
        True,
        "editor",
    )
    listed = expect(api.get(f"/api/workflows/{pk}/runs/"), 200)["results"]
    assert {(r["workflow_version"], r["draft"]) for r in listed} == {(1, False), (2, True)}
    expect(api.post(f"/api/workflows/{pk}/runs/", {"version": "v9"}, format="json"), 400)


def test_save_with_publish_goes_live_only_when_valid(
    api: APIClient, lead_workflow: Workflow
) -> None:
    pk = lead_workflow.pk
    v1 = expect(api.get(f"/api/workflows/{pk}/"), 200)
    refused = api.put(
        f"/api/workflows/{pk}/",
        {"graph": broken(v1["graph"]), "base_version": 1, "publish": True},
        format="json",
    )
    assert refused.status_code == 400, refused.content
    after = expect(api.get(f"/api/workflows/{pk}/"), 200)
    assert (after["version"], after["published_version"]) == (1, 1)  # nothing saved

    live = save(api, v1, with_prompt(v1["graph"], "Shorter."), publish=True)
    assert (live["version"], live["published_version"], live["draft_differs"]) == (2, 2, False)


def test_a_workflow_is_published_only_once_valid(
    api: APIClient, lead_workflow: Workflow, leads: list[dict[str, Any]]
) -> None:
    good = expect(api.get(f"/api/workflows/{lead_workflow.pk}/"), 200)["graph"]
    created = expect(
        api.post("/api/workflows/", {"name": "wip", "graph": broken(good)}, format="json"), 201
    )
    assert (created["version"], created["published_version"], created["draft_differs"]) == (
        1,
        None,
        True,
    )
    workflow = Workflow.objects.get(pk=created["id"])
    runs = f"/api/workflows/{workflow.pk}/runs/"
    # Never published because never valid: the problems are the answer.
    assert post_hook(workflow, {"leads": leads}).status_code == 409
    invalid = expect(api.post(runs, {"input": {"leads": leads}}, format="json"), 400)
    assert any("nowhere" in e["message"] for e in invalid["errors"])

    # A valid draft is still not live until published.
    save(api, created, good)
    answer = post_hook(workflow, {"leads": leads})
    assert answer.status_code == 409
    assert "no published version" in answer.json()["error"]
    rest = expect(api.post(runs, {"input": {"leads": leads}}, format="json"), 409)
    assert "v2 is a draft" in rest["error"] and "publish" in rest["error"]
    assert not Run.objects.filter(workflow=workflow).exists()

    expect(api.post(f"/api/workflows/{workflow.pk}/publish/", {}, format="json"), 200)
    assert post_hook(workflow, {"leads": leads}).status_code == 202


def test_versions_are_listed_diffed_and_restored(api: APIClient, lead_workflow: Workflow) -> None:
    pk = lead_workflow.pk
    v1 = expect(api.get(f"/api/workflows/{pk}/"), 200)
    v2 = save(api, v1, with_prompt(v1["graph"], "Second prompt"), message="second")
    third_graph = copy.deepcopy(v2["graph"])
    third_graph["blocks"] = [b for b in third_graph["blocks"] if b["id"] != "slack"]
    third_graph["edges"] = [
        e for e in third_graph["edges"] if "slack" not in (e["source"], e["target"])
    ]
    next(b for b in third_graph["blocks"] if b["id"] == "webhook")["position"] = {"x": 5, "y": 5}
    assert save(api, v2, third_graph, message="no slack")["version"] == 3

    page = expect(api.get(f"/api/workflows/{pk}/versions/"), 200)
    rows = [(v["number"], v["message"], v["live"], v["draft"]) for v in page["results"]]
    assert rows == [(3, "no slack", False, True), (2, "second", False, False), (1, "", True, False)]
    assert page["results"][0]["created_by"] == "owner" and page["count"] == 3

    diff = expect(api.get(f"/api/workflows/{pk}/versions/diff/?from=1&to=3"), 200)
    assert (diff["from"], diff["to"]) == (1, 3)
    assert [b["id"] for b in diff["blocks"]["removed"]] == ["slack"]
    assert [b["id"] for b in diff["blocks"]["moved"]] == ["webhook"]
    changed = {b["id"]: b["fields"] for b in diff["blocks"]["changed"]}
    assert changed == {
        "agent_summary": [
            {
                "path": "config.user_prompt",
                "change": "changed",
                "before": next(b for b in v1["graph"]["blocks"] if b["id"] == "agent_summary")[
                    "config"
                ]["user_prompt"],
                "after": "Second prompt",
            }
        ]
    }
    assert {"source": "agent_summary", "target": "slack"} in diff["edges"]["removed"]
    expect(api.get(f"/api/workflows/{pk}/versions/diff/?from=1"), 400)
    expect(api.get(f"/api/workflows/{pk}/versions/diff/?from=1&to=9"), 404)

    restored = expect(api.post(f"/api/workflows/{pk}/versions/1/restore/"), 200)
    assert restored["version"] == 4 and restored["graph"] == v1["graph"]
    assert restored["published_version"] == 1 and restored["draft_differs"] is False
    one = expect(api.get(f"/api/workflows/{pk}/versions/4/"), 200)
    assert one["message"] == "restored from v1" and one["graph"] == v1["graph"]
    expect(api.post(f"/api/workflows/{pk}/versions/9/restore/"), 404)


def test_another_users_versions_do_not_exist(
    api: APIClient, other_api: APIClient, lead_workflow: Workflow
) -> None:
    pk = lead_workflow.pk
    for path in ["versions/", "versions/1/", "versions/diff/?from=1&to=1"]:
        expect(other_api.get(f"/api/workflows/{pk}/{path}"), 404)
    expect(other_api.post(f"/api/workflows/{pk}/versions/1/restore/"), 404)
    expect(other_api.post(f"/api/workflows/{pk}/publish/", {}, format="json"), 404)
    assert expect(api.get(f"/api/workflows/{pk}/"), 200)["version"] == 1
