"""The run websocket: who may follow a run, and what they receive (snapshot, deltas, final
snapshot), through the real ASGI application, the session middleware and the Redis layer."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client
from django.utils import timezone

from builder.services import run_create, workflow_create
from engine import consumers
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run
from engine.snapshots import run_snapshot
from engine.store import group_name, publish_run_ended
from klyntos.asgi import application
from simulator.testing import RunningSimulator
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
TIMEOUT = 10.0
FINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}


def lookup_graph() -> dict[str, Any]:
    """One simulated Clearbit call per item, one at a time: a run that lasts a few flushes."""
    url = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"
    auth = {"Authorization": "Bearer <env.CLEARBIT_API_KEY>"}
    return {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "loop",
                "type": "loop",
                "name": "loop",
                "config": {"items": "<webhook.body.items>", "max_concurrent": 1},
            },
            {
                "id": "fetch",
                "type": "http",
                "name": "fetch",
                "parent": "loop",
                "config": {"url": url, "headers": auth},
            },
        ],
        "edges": [{"source": "webhook", "target": "loop"}],
    }


def new_run(owner: Any, items: list[dict[str, Any]], graph: dict[str, Any] | None = None) -> Run:
    workflow = workflow_create(owner=owner, name="live", graph=graph or burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": items})
    return run


def session_cookie(username: str, password: str) -> bytes:
    client = Client()
    assert client.login(username=username, password=password)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(
    run_id: Any, cookie: bytes | None = None, origin: tuple[bytes, bytes] = ORIGIN
) -> WebsocketCommunicator:
    headers = [origin] + ([(b"cookie", cookie)] if cookie else [])
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)


async def receive_until_close(
    communicator: WebsocketCommunicator, within: float = TIMEOUT
) -> tuple[list[dict[str, Any]], int]:
    """Every message until the server closes, and the close code; fails after `within` s."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"the socket did not close within {within}s ({len(messages)} messages)"
        output = await communicator.receive_output(timeout=left)
        if output["type"] == "websocket.close":
            return messages, output.get("code", 1000)
        assert output["type"] == "websocket.send", output
        messages.append(json.loads(output["text"]))


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


async def db_snapshot(run_id: Any) -> dict[str, Any]:
    return as_json(await sync_to_async(run_snapshot)(run_id))


async def close_db() -> None:
    await sync_to_async(connections.close_all)()  # the async ORM's thread keeps one open


async def test_owner_follows_a_run_from_snapshot_through_deltas_to_the_final_snapshot(
    owner: Any, simulator: RunningSimulator
) -> None:
    leads = [{"domain": f"d{i}.example"} if i != 2 else {} for i in range(6)]
    run = await sync_to_async(new_run)(owner, leads, lookup_graph())
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected

    first = await communicator.receive_json_from(timeout=TIMEOUT)
    assert first["type"] == "snapshot" and first["final"] is False and first["seq"] == 0
    assert first["run"]["id"] == str(run.pk) and first["run"]["status"] == "queued"
    assert first["items"] == [] and first["steps"] == []

    await execute_run(run.pk)
    messages, code = await receive_until_close(communicator)
    assert code == 1000

    deltas, final = messages[:-1], messages[-1]
    assert deltas and all(m["type"] == "delta" for m in deltas)
    seqs = [m["seq"] for m in deltas]
    assert seqs == sorted(set(seqs)) and seqs[0] > first["seq"]
    assert all(m["run"]["status"] == "running" for m in deltas)  # the final one became a snapshot
    assert {k for m in deltas for k in m} == {
        "type",
        "seq",
        "run",
        "blocks",
        "loops",
        "items",
        "items_omitted",
        "steps",
    }
    assert all("output" not in step for m in deltas for step in m["steps"])

    assert final["type"] == "snapshot" and final["final"] is True and final["seq"] > seqs[-1]
    assert final == await db_snapshot(run.pk)
    stored = await Run.objects.aget(pk=run.pk)
    assert (
        final["seq"] == stored.last_seq
        and final["run"]["status"] == stored.status == "partially_succeeded"
    )
    assert final["run"]["progress"] == {
        "total": 6,
        "succeeded": 5,
        "failed": 1,
        "cancelled": 0,
        "not_started": 0,
        "running": 0,
    }
    assert sorted((i["index"], i["status"]) for i in final["items"]) == [
        (i, "failed" if i == 2 else "succeeded") for i in range(6)
    ]
    assert final["failed"] == ["loop[2]"] and len(final["recent"]) == 6
    # Only top-level steps travel; body steps are counted per block.
    assert {s["block_id"] for s in final["steps"]} == {"webhook", "loop"}
    assert final["blocks"]["fetch"] == {
        "succeeded": 5,
        "failed": 1,
        "cancelled": 0,
        "not_started": 0,
        "running": 0,
        "total": 6,
        "status": "partially_succeeded",
    }
    assert final["blocks"]["loop"]["status"] == "partially_succeeded"
    assert final["loops"]["loop"]["max_concurrent"] == 1
    assert await StepRun.objects.filter(run_id=run.pk, block_id="fetch").acount() == 6
    assert all("output" not in step for step in final["steps"])
    await communicator.disconnect()
    await close_db()


async def test_a_body_block_is_painted_running_for_as_long_as_its_loop_runs(
    owner: Any, simulator: RunningSimulator
) -> None:
    """One item at a time: between two items no fetch runs, yet the canvas never reads
    `succeeded` for it before the loop ends, in the deltas or in a snapshot taken then."""
    leads = [{"domain": f"d{i}.example"} for i in range(8)]
    run = await sync_to_async(new_run)(owner, leads, lookup_graph())
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    await communicator.receive_json_from(timeout=TIMEOUT)  # the queued run's snapshot

    task = asyncio.create_task(execute_run(run.pk))
    deadline = time.monotonic() + TIMEOUT
    while await ItemRun.objects.filter(run_id=run.pk, status="succeeded").acount() < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    midway = await db_snapshot(run.pk)
    await task
    messages, _ = await receive_until_close(communicator)

    assert midway["blocks"]["loop"]["status"] == "running"
    assert midway["blocks"]["fetch"]["status"] == "running"
    assert midway["blocks"]["fetch"]["succeeded"] >= 3
    painted = [
        (m["blocks"]["loop"]["status"], m["blocks"]["fetch"])
        for m in messages[:-1]
        if "loop" in m["blocks"]
    ]
    assert all("fetch" in m["blocks"] for m in messages[:-1] if "loop" in m["blocks"])
    during = [fetch for loop, fetch in painted if loop == "running" and fetch["succeeded"]]
    assert during and all(fetch["status"] == "running" for fetch in during)
    assert any(fetch["running"] == 0 for fetch in during)  # the moments that read done
    assert messages[-1]["blocks"]["fetch"]["status"] == "succeeded"
    await communicator.disconnect()
    await close_db()


async def test_a_step_run_if_skipped_is_marked_on_the_wire(owner: Any) -> None:
    """Stored as succeeded, a skip must not read as done on the canvas: its step says
    `skipped` in the deltas and in the snapshots, which never carry its output."""
    graph = burst_graph()
    graph["blocks"].append(
        {
            "id": "notify",
            "type": "transform",
            "name": "notify",
            "config": {"input": {}, "expression": "`1`", "run_if": "<webhook.body.nobody>"},
        }
    )
    graph["edges"].append({"source": "loop", "target": "notify"})
    run = await sync_to_async(new_run)(owner, [{"v": 1}], graph)
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    await communicator.receive_json_from(timeout=TIMEOUT)
    await execute_run(run.pk)
    messages, _ = await receive_until_close(communicator)

    told = [s for m in messages for s in m["steps"] if s["block_id"] == "notify"]
    assert told and all(s["skipped"] is True and s["status"] == "succeeded" for s in told)
    others = [s for m in messages for s in m["steps"] if s["block_id"] != "notify"]
    assert others and not any("skipped" in s for s in others)
    stored = await db_snapshot(run.pk)
    assert {s["block_id"]: s.get("skipped", False) for s in stored["steps"]} == {
        "webhook": False,
        "loop": False,
        "notify": True,
    }
    await communicator.disconnect()
    await close_db()


async def test_anonymous_users_are_refused(owner: Any) -> None:
    run = await sync_to_async(new_run)(owner, [])
    communicator = await open_socket(run.pk)
    assert await communicator.connect(timeout=TIMEOUT) == (False, 4401)
    await communicator.disconnect()
    await close_db()


async def test_another_users_run_and_unknown_ids_look_the_same(owner: Any, other_user: Any) -> None:
    run = await sync_to_async(new_run)(owner, [])
    intruder = await sync_to_async(session_cookie)("intruder", "intruder-password")
    mine = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    for run_id, cookie in [(run.pk, intruder), (uuid.uuid4(), mine), ("not-a-uuid", mine)]:
        communicator = await open_socket(run_id, cookie)
        assert await communicator.connect(timeout=TIMEOUT) == (False, 4404), run_id
        await communicator.disconnect()
    await close_db()


async def test_a_foreign_origin_is_refused(owner: Any) -> None:
    run = await sync_to_async(new_run)(owner, [])
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    for origin in [(b"origin", b"http://evil.example"), (b"x-no-origin", b"")]:
        communicator = await open_socket(run.pk, cookie, origin=origin)
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert not connected, origin
        await communicator.disconnect()
    await close_db()


async def test_a_burst_of_1000_items_is_coalesced_and_ends_with_the_stored_state(
    owner: Any,
) -> None:
    run = await sync_to_async(new_run)(owner, [{"v": i} if i != 7 else {} for i in range(1000)])
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    first = await communicator.receive_json_from(timeout=TIMEOUT)
    assert first["type"] == "snapshot" and not first["final"]

    started = time.monotonic()
    await execute_run(run.pk)
    elapsed = time.monotonic() - started
    messages, code = await receive_until_close(communicator, within=20)
    assert code == 1000

    received = 1 + len(messages)  # the first snapshot, the deltas and the final snapshot
    # The mechanism's bound: the two snapshots, a delta at once and at most one per
    # DELTA_INTERVAL (0.1 s) after it, plus one for the channel layer delivering the run's
    # last deltas after execute_run returned. "+ 2" was short: 6 in 0.376 s in CI.
    assert received <= elapsed * 10 + 4, (received, elapsed)
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(set(seqs))
    final = messages[-1]
    assert final["type"] == "snapshot" and final["final"] is True
    assert final == await db_snapshot(run.pk)
    assert len(final["items"]) == 51  # the 50 most recent and the failed one
    assert final["run"]["status"] == "partially_succeeded"
    assert final["run"]["progress"] == {
        "total": 1000,
        "succeeded": 999,
        "failed": 1,
        "cancelled": 0,
        "not_started": 0,
        "running": 0,
    }
    stored = {
        k: s async for k, s in ItemRun.objects.filter(run_id=run.pk).values_list("key", "status")
    }
    assert len(stored) == 1000
    assert all(stored[i["key"]] == i["status"] for i in final["items"])
    assert [i["index"] for i in final["items"] if i["status"] == "failed"] == [7]
    await communicator.disconnect()
    await close_db()


async def running_run(owner: Any, last_seq: int) -> Run:
    run = await sync_to_async(new_run)(owner, [])
    await Run.objects.filter(pk=run.pk).aupdate(
        status="running", last_seq=last_seq, started_at=timezone.now()
    )
    return run


async def follow(run: Run) -> WebsocketCommunicator:
    """The owner's socket on `run`, connected, past its first snapshot."""
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    await communicator.receive_json_from(timeout=TIMEOUT)
    return communicator


def delta(seq: int, status: str = "running", **run: Any) -> dict[str, Any]:
    return {
        "type": "run.delta",
        "delta": {
            "seq": seq,
            "run": {"status": status, "last_seq": seq, **run},
            "items": [],
            "steps": [],
        },
    }


async def test_deltas_the_snapshot_already_covers_are_dropped(owner: Any) -> None:
    run = await running_run(owner, last_seq=40)
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    first = await communicator.receive_json_from(timeout=TIMEOUT)
    assert (first["type"], first["seq"], first["final"]) == ("snapshot", 40, False)

    layer = get_channel_layer()
    for seq in (12, 40, 41, 41, 39, 43):
        await layer.group_send(group_name(run.pk), delta(seq, total=seq))
    # The layer keeps order: 12, 40 (covered by the snapshot), then 41 (again), 39 are dropped.
    got = [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(2)]
    assert [(m["type"], m["seq"], m["run"]["total"]) for m in got] == [
        ("delta", 41, 41),
        ("delta", 43, 43),
    ]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_json_to({"type": "hello"})  # client messages are ignored
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()
    await close_db()


async def test_deltas_arriving_in_a_burst_are_merged(owner: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(consumers, "DELTA_INTERVAL", 1.0)
    run = await running_run(owner, last_seq=10)
    communicator = await follow(run)

    def item(i: int, status: str) -> dict[str, Any]:
        return {"key": f"loop[{i}]", "index": i, "status": status}

    layer = get_channel_layer()
    burst = [
        (11, [item(0, "running")]),
        (12, [item(1, "running")]),
        (13, [item(0, "succeeded"), item(2, "running")]),
        (14, [item(1, "failed")]),
    ]
    for seq, items in burst:
        message = delta(seq, succeeded=seq)
        message["delta"]["items"] = items
        await layer.group_send(group_name(run.pk), message)

    first = await communicator.receive_json_from(timeout=TIMEOUT)
    assert (first["seq"], first["items"]) == (11, [item(0, "running")])
    merged = await communicator.receive_json_from(timeout=TIMEOUT)
    assert merged["type"] == "delta" and merged["seq"] == 14 and merged["run"]["succeeded"] == 14
    assert sorted(merged["items"], key=lambda i: i["index"]) == [
        item(0, "succeeded"),
        item(1, "failed"),
        item(2, "running"),
    ]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
    await close_db()


async def test_a_chunk_s_items_go_with_the_coordinator_s_next_delta_bounded(owner: Any) -> None:
    """Workers executing a distributed loop's chunks publish their items (`run.items`, no seq
    of the run's): nothing is sent for them alone; the coordinator's next delta carries
    them, the newest WIRE_ITEMS of however many, the rest counted."""
    run = await running_run(owner, last_seq=10)
    communicator = await follow(run)

    def item(i: int, status: str, worker: str) -> dict[str, Any]:
        return {"key": f"loop[{i}]", "index": i, "status": status, "worker": worker}

    layer = get_channel_layer()
    group = group_name(run.pk)
    await layer.group_send(
        group, {"type": "run.items", "items": [item(0, "running", "w0")], "items_omitted": 0}
    )
    assert await communicator.receive_nothing(timeout=0.3)  # no seq: nothing on its own
    for chunk, worker in ((0, "w0"), (1, "w1")):  # two chunks of 300 items on two workers
        for start in range(chunk * 300, chunk * 300 + 300, 50):
            rows = [item(i, "succeeded", worker) for i in range(start, start + 50)][::-1]
            await layer.group_send(group, {"type": "run.items", "items": rows, "items_omitted": 0})
    await layer.group_send(group, delta(11, succeeded=600))
    got = await communicator.receive_json_from(timeout=TIMEOUT)
    assert got["type"] == "delta" and got["seq"] == 11 and got["run"]["succeeded"] == 600
    assert len(got["items"]) == consumers.WIRE_ITEMS
    assert got["items_omitted"] == 600 - consumers.WIRE_ITEMS
    assert got["items"][0] == item(599, "succeeded", "w1")  # newest first
    assert all(i["status"] == "succeeded" for i in got["items"])  # loop[0] ended too
    assert len(json.dumps(got)) < 65_536
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
    await close_db()


async def test_a_final_delta_becomes_the_final_snapshot(owner: Any) -> None:
    run = await running_run(owner, last_seq=5)
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["seq"] == 5
    # As the store does it: the rows are committed, then the delta is published.
    await Run.objects.filter(pk=run.pk).aupdate(
        status="succeeded", last_seq=9, finished_at=timezone.now()
    )
    await get_channel_layer().group_send(group_name(run.pk), delta(9, "succeeded"))
    messages, code = await receive_until_close(communicator)
    assert code == 1000 and len(messages) == 1
    assert messages[0] == await db_snapshot(run.pk)
    assert (messages[0]["final"], messages[0]["seq"], messages[0]["run"]["status"]) == (
        True,
        9,
        "succeeded",
    )
    await communicator.disconnect()
    await close_db()


async def test_a_cancelled_run_ends_the_stream_on_the_end_notice(owner: Any) -> None:
    run = await running_run(owner, last_seq=3)
    communicator = await follow(run)
    await publish_run_ended(run.pk)  # still running: nothing to say
    assert await communicator.receive_nothing(timeout=0.3)
    await Run.objects.filter(pk=run.pk).aupdate(
        status="cancelled", finished_at=timezone.now(), running=0
    )
    await publish_run_ended(run.pk)
    messages, code = await receive_until_close(communicator)
    assert code == 1000 and [(m["type"], m["final"], m["run"]["status"]) for m in messages] == [
        ("snapshot", True, "cancelled")
    ]
    await communicator.disconnect()
    await close_db()


async def test_a_quiet_stream_notices_a_run_ended_without_notice(
    owner: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(consumers, "WATCH_INTERVAL", 0.2)
    run = await running_run(owner, last_seq=3)
    communicator = await follow(run)
    assert await communicator.receive_nothing(timeout=0.6)  # watched, still running
    await Run.objects.filter(pk=run.pk).aupdate(status="cancelled", finished_at=timezone.now())
    messages, code = await receive_until_close(communicator, within=5)
    assert code == 1000 and [(m["final"], m["run"]["status"]) for m in messages] == [
        (True, "cancelled")
    ]
    await communicator.disconnect()
    await close_db()


async def test_a_finished_run_gives_one_final_snapshot_and_a_close(owner: Any) -> None:
    run = await sync_to_async(new_run)(owner, [{"v": 1}, {"v": 2}])
    await execute_run(run.pk)
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=TIMEOUT))[0]
    messages, code = await receive_until_close(communicator)
    assert code == 1000 and len(messages) == 1
    (snapshot,) = messages
    assert snapshot["type"] == "snapshot" and snapshot["final"] is True
    assert snapshot["run"]["status"] == "succeeded" and snapshot["run"]["duration"] is not None
    assert snapshot == await db_snapshot(run.pk)
    assert sorted((i["key"], i["status"], i["data"]) for i in snapshot["items"]) == [
        ("loop[0]", "succeeded", {"v": 1}),
        ("loop[1]", "succeeded", {"v": 2}),
    ]
    await communicator.disconnect()
    await close_db()


async def test_the_final_snapshot_keeps_the_deltas_spacing(owner: Any, monkeypatch: Any) -> None:
    """At most one message per DELTA_INTERVAL, the last one too: a run ending right after a
    delta made an eleventh message in the run's last second."""
    monkeypatch.setattr(consumers, "DELTA_INTERVAL", 0.5)
    run = await running_run(owner, last_seq=10)
    communicator = await follow(run)
    await get_channel_layer().group_send(group_name(run.pk), delta(11, succeeded=1))
    first = await communicator.receive_json_from(timeout=TIMEOUT)
    sent = asyncio.get_running_loop().time()
    assert first["type"] == "delta"
    await Run.objects.filter(pk=run.pk).aupdate(
        status="succeeded", finished_at=timezone.now(), running=0, last_seq=12
    )
    await publish_run_ended(run.pk)
    messages, code = await receive_until_close(communicator)
    assert [(m["type"], m["final"]) for m in messages] == [("snapshot", True)]
    assert asyncio.get_running_loop().time() - sent >= 0.45
    await communicator.disconnect()
    await close_db()
