"""Bounded REST reads of a run (docs/run-protocol.md): cursor pages with filters and search,
the last run of a workflow, the timeline; and the workflow socket announcing runs."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from builder.services import run_create, workflow_create
from engine.runner import execute_run
from klyntos.asgi import application
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def finished_run(user: Any, n: int) -> Any:
    workflow = workflow_create(owner=user, name="reads", graph=burst_graph())
    items = [
        {"v": i, "name": f"lead-{i}"} if i % 10 != 3 else {"name": f"bad-{i}"} for i in range(n)
    ]
    run, _ = run_create(workflow=workflow, input={"items": items})
    async_to_sync(execute_run)(run.pk)
    return run


def test_cursor_pages_cover_every_item_once_with_filters_and_search(
    user: Any, api: APIClient
) -> None:
    run = finished_run(user, 120)
    keys: list[str] = []
    cursor = None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/api/runs/{run.pk}/items/", params).json()
        assert page["count"] == 120 and len(page["results"]) <= 50
        assert all("steps" not in row for row in page["results"])
        keys += [row["key"] for row in page["results"]]
        cursor = page["next"]
        if not cursor:
            break
    assert len(keys) == len(set(keys)) == 120
    assert keys[:3] == ["loop[0]", "loop[1]", "loop[2]"]

    failed = api.get(f"/api/runs/{run.pk}/items/", {"status": "failed"}).json()
    assert failed["count"] == 12 and {r["index"] % 10 for r in failed["results"]} == {3}
    found = api.get(f"/api/runs/{run.pk}/items/", {"q": "BAD-13"}).json()
    assert [r["key"] for r in found["results"]] == ["loop[13]"]
    assert api.get(f"/api/runs/{run.pk}/items/", {"status": "not_started"}).json()["count"] == 0
    detail = api.get(f"/api/runs/{run.pk}/items/", {"key": "loop[4]"}).json()["results"][0]
    assert detail["steps"][0]["output"] == {"result": 4}

    assert api.get(f"/api/runs/{run.pk}/items/", {"limit": 500}).status_code == 400
    bad = api.get(f"/api/runs/{run.pk}/items/", {"cursor": "nonsense"})
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]
    assert api.get(f"/api/runs/{run.pk}/items/", {"status": "lost"}).status_code == 400


def test_last_run_and_timeline_are_bounded(user: Any, api: APIClient, other_api: APIClient) -> None:
    workflow = workflow_create(owner=user, name="never", graph=burst_graph())
    assert api.get(f"/api/workflows/{workflow.pk}/runs/last/").json() == {"run": None}
    run = finished_run(user, 60)
    last = api.get(f"/api/workflows/{run.workflow_id}/runs/last/").json()["run"]
    assert last["id"] == str(run.pk) and last["status"] == "partially_succeeded"
    assert last["progress"]["failed"] == 6
    assert other_api.get(f"/api/workflows/{run.workflow_id}/runs/last/").status_code == 404

    timeline = api.get(f"/api/runs/{run.pk}/timeline/", {"buckets": 20}).json()
    assert len(timeline["concurrency"]) == 20
    assert sum(b["started"] for b in timeline["concurrency"]) == 60
    assert sum(b["failed"] for b in timeline["concurrency"]) == 6
    assert timeline["durations"]["count"] == 60 and sum(timeline["durations"]["counts"]) == 60
    assert api.get(f"/api/runs/{run.pk}/timeline/", {"buckets": 501}).status_code == 400
    assert other_api.get(f"/api/runs/{run.pk}/timeline/").status_code == 404


def test_the_workflow_socket_announces_a_run_from_any_trigger(user: Any) -> None:
    from django.test import Client

    workflow = workflow_create(owner=user, name="live", graph=burst_graph())
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario() -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(
            application,
            f"/ws/workflows/{workflow.pk}/",
            headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)],
        )
        assert (await communicator.connect(timeout=10))[0]
        got = [await communicator.receive_json_from(timeout=10)]
        run, _ = await sync_to_async(run_create)(
            workflow=workflow, input={"items": [{"v": 1}]}, trigger="cli"
        )
        got.append(await communicator.receive_json_from(timeout=10))
        await execute_run(run.pk)
        while got[-1]["type"] != "run.ended":
            got.append(await communicator.receive_json_from(timeout=10))
        await communicator.disconnect()
        return got

    messages = async_to_sync(scenario)()
    assert messages[0] == {"type": "hello", "last_run": None}
    assert messages[1]["type"] == "run.started" and messages[1]["run"]["trigger"] == "cli"
    assert messages[-1]["run"]["status"] == "succeeded"


def test_the_timeline_lists_breaker_periods_clipped_to_its_window(
    user: Any, api: APIClient
) -> None:
    run = finished_run(user, 20)
    run.refresh_from_db()
    zero = run.started_at.timestamp()
    history = [[zero + 1, "open"], [zero + 3, "half_open"], [zero + 3.5, "closed"]]
    history += [[zero + 6, "open"]]  # still open when the run ended
    run.providers = {
        "api.clearbit.com": {"breaker": {"state": "open", "history": history}},
        "slack.com": {"limit": 4, "history": [[zero, 4]]},
    }
    run.save(update_fields=["providers"])
    whole = api.get(f"/api/runs/{run.pk}/timeline/", {"from": 0, "to": 10}).json()
    assert whole["paused"] == {
        "api.clearbit.com": [
            {"from": 1.0, "to": 3.0, "state": "open"},
            {"from": 3.0, "to": 3.5, "state": "half_open"},
            {"from": 6.0, "to": None, "state": "open"},
        ]
    }
    window = api.get(f"/api/runs/{run.pk}/timeline/", {"from": 2, "to": 5}).json()
    assert window["paused"]["api.clearbit.com"] == [
        {"from": 2.0, "to": 3.0, "state": "open"},
        {"from": 3.0, "to": 3.5, "state": "half_open"},
    ]
