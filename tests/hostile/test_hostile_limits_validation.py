"""Issue 7, finding 2: a huge graph must not freeze or exhaust the server.

Validation used to keep every block's whole upstream map (quadratic: 2,000 blocks took
~10 s and 1.1 GB) on every save *and every read*, with no size limit. Now the size limits
are settings checked before any work (400 naming the limit), validation is linear, and
its result is stored with the version so a read never validates again. Timings are in
`bench/limits.py` (key "d"); these tests assert the behaviour and generous memory bounds.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from bench.limits import chain_graph as chain
from builder import services, webhook_security
from builder.models import Secret, WorkflowVersion
from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate

pytestmark = pytest.mark.django_db


def nested(depth: int) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}
    ]
    parent, items = None, "<webhook.body.items>"
    for level in range(depth):
        blocks.append(
            {
                "id": f"l{level}",
                "type": "loop",
                "name": f"l{level}",
                "parent": parent,
                "config": {"items": items, "variable": f"v{level}"},
            }
        )
        parent, items = f"l{level}", f"<v{level}.children>"
    return {"blocks": blocks, "edges": [{"source": "webhook", "target": "l0"}]}


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every full validation the builder runs."""
    calls: list[int] = []
    real = services.validate

    def counting(graph: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(graph.blocks))
        return real(graph, *args, **kwargs)

    monkeypatch.setattr(services, "validate", counting)
    return calls


def expect_limit(response: Any, setting: str) -> dict[str, Any]:
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["limit"] == setting
    assert setting in body["error"]
    return body


def test_ten_thousand_blocks_answer_400_naming_the_limit_without_validating(
    api: APIClient, validations: list[int]
) -> None:
    response = api.post("/api/workflows/", {"name": "huge", "graph": chain(10_000)}, format="json")
    body = expect_limit(response, "KLYNTOS_MAX_BLOCKS")
    assert "10000 blocks" in body["error"] and "2000" in body["error"]
    assert validations == []
    assert WorkflowVersion.objects.count() == 0


def test_a_huge_body_is_not_walked_value_by_value_before_the_limit(
    api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The body check for strings jsonb cannot store walked every value of a 1.6 MB graph
    # (~0.5 s of the 1 s budget); they can only come from `\u` escapes, so a body without
    # one is not walked, and one with one still answers 400 naming where.
    walks: list[Any] = []
    real = webhook_security._unstorable_string
    monkeypatch.setattr(
        webhook_security, "_unstorable_string", lambda value: walks.append(1) or real(value)
    )
    expect_limit(
        api.post("/api/workflows/", {"name": "huge", "graph": chain(10_000)}, format="json"),
        "KLYNTOS_MAX_BLOCKS",
    )
    assert walks == []
    for raw, found in [
        ('{"name": "a\\u0000b", "graph": {}}', "NUL character"),
        ('{"name": "\\ud800", "graph": {}}', "unpaired surrogate"),
    ]:
        refused = api.post("/api/workflows/", raw, content_type="application/json")
        assert refused.status_code == 400 and found in refused.content.decode(), refused.content
    assert len(walks) == 2
    assert WorkflowVersion.objects.count() == 0


def test_every_way_in_checks_the_limits_first(api: APIClient, validations: list[int]) -> None:
    created = api.post("/api/workflows/", {"name": "w", "graph": chain(3)}, format="json")
    assert created.status_code == 201
    workflow = created.json()
    validations.clear()
    put = api.put(
        f"/api/workflows/{workflow['id']}/",
        {"graph": chain(2001), "base_version": workflow["version"]},
        format="json",
    )
    expect_limit(put, "KLYNTOS_MAX_BLOCKS")
    check = api.post(
        f"/api/workflows/{workflow['id']}/validate/", {"graph": chain(2001)}, format="json"
    )
    expect_limit(check, "KLYNTOS_MAX_BLOCKS")
    assert validations == []


def test_edges_and_loop_nesting_have_limits_too(api: APIClient, validations: list[int]) -> None:
    many_edges = chain(3)
    many_edges["edges"] = many_edges["edges"] * 5001  # 10,002 edges on three blocks
    expect_limit(
        api.post("/api/workflows/", {"name": "e", "graph": many_edges}, format="json"),
        "KLYNTOS_MAX_EDGES",
    )
    body = expect_limit(
        api.post("/api/workflows/", {"name": "n", "graph": nested(6)}, format="json"),
        "KLYNTOS_MAX_LOOP_DEPTH",
    )
    assert "6 levels of nested loops" in body["error"]
    assert validations == []
    assert (
        api.post("/api/workflows/", {"name": "ok", "graph": nested(5)}, format="json").status_code
        == 201
    )


def test_the_limits_are_settings(api: APIClient) -> None:
    with override_settings(KLYNTOS_MAX_BLOCKS=10, KLYNTOS_MAX_LOOP_DEPTH=2):
        expect_limit(
            api.post("/api/workflows/", {"name": "w", "graph": chain(11)}, format="json"),
            "KLYNTOS_MAX_BLOCKS",
        )
        expect_limit(
            api.post("/api/workflows/", {"name": "n", "graph": nested(3)}, format="json"),
            "KLYNTOS_MAX_LOOP_DEPTH",
        )
        assert (
            api.post(
                "/api/workflows/", {"name": "w", "graph": chain(10)}, format="json"
            ).status_code
            == 201
        )


def test_a_saved_workflow_is_read_without_validating_it_again(
    api: APIClient, user: Any, validations: list[int]
) -> None:
    created = api.post(
        "/api/workflows/", {"name": "w", "graph": chain(5, secret="TOKEN")}, format="json"
    )
    assert created.status_code == 201
    assert validations == [5]  # once, when saved
    body = created.json()
    assert body["validation"]["ok"] is False
    assert {e["field"] for e in body["validation"]["errors"]} == {"input"}
    assert all("TOKEN" in e["message"] for e in body["validation"]["errors"])

    for _ in range(3):
        read = api.get(f"/api/workflows/{body['id']}/")
        assert read.status_code == 200
        assert read.json()["validation"] == body["validation"]
    # Secret references are resolved when read: adding the secret makes it valid, still
    # without validating the graph again.
    services.secret_set(owner=user, name="TOKEN", value="t0ken-value")
    read = api.get(f"/api/workflows/{body['id']}/")
    assert read.json()["validation"] == {"ok": True, "errors": [], "warnings": []}
    api.get("/api/workflows/")
    assert validations == [5]
    Secret.objects.filter(owner=user).delete()
    assert api.get(f"/api/workflows/{body['id']}/").json()["validation"]["ok"] is False
    assert validations == [5]


def test_starting_a_run_uses_the_stored_result(api: APIClient, validations: list[int]) -> None:
    created = api.post(
        "/api/workflows/", {"name": "w", "graph": chain(3, secret="MISSING")}, format="json"
    )
    validations.clear()
    response = api.post(
        f"/api/workflows/{created.json()['id']}/runs/", {"input": {}}, format="json"
    )
    assert response.status_code == 400
    assert "MISSING" in response.json()["errors"][0]["message"]
    assert validations == []


def test_a_version_saved_before_results_were_stored_is_validated_once(
    api: APIClient, validations: list[int]
) -> None:
    created = api.post("/api/workflows/", {"name": "w", "graph": chain(4)}, format="json").json()
    WorkflowVersion.objects.update(validation=None)  # as the migration leaves old versions
    validations.clear()
    for _ in range(3):
        assert api.get(f"/api/workflows/{created['id']}/").json()["validation"]["ok"] is True
    assert validations == [4]
    assert WorkflowVersion.objects.get().validation["issues"] == []


def test_a_2000_block_chain_validates_within_a_memory_bound() -> None:
    graph = parse_graph(chain(2000))
    tracemalloc.start()
    try:
        result = validate(graph, REGISTRY, [])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.errors == []
    assert peak < 100 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    # Scopes are still right at the far end of the chain (built on demand).
    refs = {entry["ref"] for entry in result.scopes["t1998"]}
    assert {"webhook.body", "t0.result", "t1997.result"} <= refs and "t1998" not in refs


def test_the_validate_answer_bounds_the_reference_lists(api: APIClient) -> None:
    created = api.post("/api/workflows/", {"name": "w", "graph": chain(2000)}, format="json")
    assert created.status_code == 201
    url = f"/api/workflows/{created.json()['id']}/validate/"
    whole = api.post(url, {}, format="json").json()
    assert whole["ok"] is True and whole["scopes_complete"] is False
    assert sum(len(entries) for entries in whole["scopes"].values()) <= 50_000
    picked = api.post(url, {"blocks": ["t1998"]}, format="json").json()
    assert picked["scopes_complete"] is True and list(picked["scopes"]) == ["t1998"]
    assert "t1997.result" in {entry["ref"] for entry in picked["scopes"]["t1998"]}
