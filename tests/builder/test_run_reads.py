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


def test_search_finds_non_ascii_text_and_quotes_in_an_items_data(user: Any, api: APIClient) -> None:
    """On SQLite the stored JSON escapes every non-ASCII character: "Émoji" found nothing."""
    workflow = workflow_create(owner=user, name="reads", graph=burst_graph())
    names = ["😀 Émoji Ünïcödé 🚀", "ابن محمد بن", 'Pat O"Brien', "plain", "the Ωmega"]
    items = [{"v": i, "name": name} for i, name in enumerate(names)]
    run, _ = run_create(workflow=workflow, input={"items": items})
    async_to_sync(execute_run)(run.pk)

    def found(q: str) -> list[int]:
        page = api.get(f"/api/runs/{run.pk}/items/", {"q": q}).json()
        return sorted(r["index"] for r in page["results"])

    assert found("Émoji") == [0]
    assert found("😀") == [0]
    assert found("محمد") == [1]
    assert found('O"Brien') == [2]
    assert found("Ω") == found("ω") == [4]  # either case of a non-ASCII letter
    assert found("plain") == [3]
    assert found("nowhere") == []


def test_offset_pages_are_the_cursor_pages_and_bad_offsets_are_refused(
    user: Any, api: APIClient
) -> None:
    run = finished_run(user, 330)
    url = f"/api/runs/{run.pk}/items/"
    by_cursor: list[list[str]] = []
    cursor = None
    while True:
        page = api.get(url, {"limit": 50, **({"cursor": cursor} if cursor else {})}).json()
        by_cursor.append([row["key"] for row in page["results"]])
        cursor = page["next"]
        if not cursor:
            break
    assert len(by_cursor) == 7 and len(by_cursor[-1]) == 30
    for p, keys in enumerate(by_cursor):
        page = api.get(url, {"limit": 50, "offset": p * 50}).json()
        assert [row["key"] for row in page["results"]] == keys, p
        assert page["count"] == 330
        # Its `next` reads on from there, as a cursor page's does.
        if page["next"]:
            after = api.get(url, {"limit": 50, "cursor": page["next"]}).json()
            assert [row["key"] for row in after["results"]] == by_cursor[p + 1]
        else:
            assert p == len(by_cursor) - 1
    # Filtered: the same rows at the same positions.
    failed = api.get(url, {"status": "failed", "limit": 10}).json()
    second = api.get(url, {"status": "failed", "limit": 10, "cursor": failed["next"]}).json()
    jumped = api.get(url, {"status": "failed", "limit": 10, "offset": 10}).json()
    assert jumped["results"] == second["results"] and jumped["count"] == 33
    assert api.get(url, {"offset": 330}).json()["results"] == []
    assert api.get(url, {"offset": 100_000}).status_code == 200

    for bad in ({"offset": 100_001}, {"offset": -1}, {"offset": "x"}):
        answer = api.get(url, bad)
        assert answer.status_code == 400, bad
        assert "offset" in answer.json() and "offset" in answer.json()["offset"][0], bad
    both = api.get(url, {"offset": 50, "cursor": failed["next"]})
    assert both.status_code == 400
    assert both.json() == {"offset": ["offset: give offset or cursor, not both"]}
    assert "100000" in api.get(url, {"offset": 100_001}).json()["offset"][0]

    schema = api.get("/api/schema/").content.decode()
    items_path = schema[schema.index("/api/runs/{id}/items/:") :]
    assert "name: offset" in items_path[: items_path.index("\n  /api/", 1)]


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
    assert messages[0] == {
        "type": "hello",
        "last_run": None,
        "version": 1,
        "published_version": 1,
        "draft_differs": False,
    }
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


def items_at(user: Any, spans: list[tuple[float, float | None]]) -> Any:
    """A finished run whose items were in flight over `spans` (seconds since it started;
    an end of None: no end recorded)."""
    import datetime as dt

    from django.utils import timezone

    from engine.models import ItemRun, Run

    workflow = workflow_create(owner=user, name="spans", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": []})
    zero = timezone.now() - dt.timedelta(seconds=60)

    def at(seconds: float) -> Any:
        return zero + dt.timedelta(microseconds=round(seconds * 1e6))

    ItemRun.objects.bulk_create(
        ItemRun(
            run=run,
            key=f"loop[{i}]",
            loop_block="loop",
            index=i,
            status="succeeded",
            started_at=at(began),
            finished_at=None if ended is None else at(ended),
            duration=None if ended is None else ended - began,
        )
        for i, (began, ended) in enumerate(spans)
    )
    Run.objects.filter(pk=run.pk).update(status="succeeded", started_at=zero, finished_at=at(2))
    return run


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])  # ends first
    peak = now = 0
    for _, change in edges:
        now += change
        peak = max(peak, now)
    return peak


def test_items_shorter_than_a_bucket_never_show_more_in_flight_than_ran_at_once(
    user: Any, api: APIClient
) -> None:
    """Five lanes of back-to-back 40 ms items over a second (at most 5 at once), read in
    buckets of 250 ms: each bucket held 5 items on average, though ~35 overlapped it (what
    a click on it lists)."""
    spans = [
        (lane * 0.013 + j * 0.04, lane * 0.013 + (j + 1) * 0.04)
        for lane in range(5)
        for j in range(24)
    ]
    peak = most_at_once(spans)
    assert peak == 5
    run = items_at(user, spans)
    url = f"/api/runs/{run.pk}/timeline/"
    found = api.get(url, {"from": 0, "to": 1, "buckets": 4}).json()
    buckets = found["concurrency"]
    assert len(buckets) == 4 and found["bucket_seconds"] == pytest.approx(0.25)
    assert all(b["in_flight"] <= peak for b in buckets), buckets
    # The lanes start 13 ms apart: the first bucket misses 13 + 26 + 39 + 52 ms of them.
    assert [b["in_flight"] for b in buckets[:3]] == pytest.approx([4.48, 5, 5], abs=1e-3)
    # The item-time in the window is all there: the last lanes end past 0.96 s.
    busy = sum(min(e, 1) - b for b, e in spans if b < 1)
    assert sum(b["in_flight"] for b in buckets) * 0.25 == pytest.approx(busy, abs=1e-3)
    for bucket in buckets:  # `overlapping` is what a click on the bucket lists
        listed = api.get(
            f"/api/runs/{run.pk}/items/", {"from": bucket["t"], "to": bucket["t"] + 0.25}
        ).json()
        assert bucket["overlapping"] == listed["count"] > bucket["in_flight"]
    # Zoomed in past an item's length: the mean is the item's share of each bucket.
    one = items_at(user, [(0.1, 0.6), (0.3, None)])  # the second never ended: until 2 s
    zoom = api.get(f"/api/runs/{one.pk}/timeline/", {"from": 0, "to": 1, "buckets": 4}).json()
    assert [b["in_flight"] for b in zoom["concurrency"]] == pytest.approx(
        [0.6, 1.8, 1.4, 1.0], abs=1e-3
    )
    assert [b["overlapping"] for b in zoom["concurrency"]] == [1, 2, 2, 1]
