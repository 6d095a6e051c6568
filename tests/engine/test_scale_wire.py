"""The run socket at scale (issue 6): every frame bounded whatever N, deltas coalesced to at
most 10 a second, counters that equal the database's, and a cancel that accounts for every
item (never-started ones included), through the real ASGI app and the Redis layer."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db.models import Count

from engine.core.counters import COUNTS
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run
from simulator.testing import RunningSimulator
from tests.engine.graphs import burst_graph
from tests.engine.test_consumers import (
    close_db,
    lookup_graph,
    new_run,
    open_socket,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

FRAME_LIMIT = 64 * 1024


async def frames_until_close(
    communicator: WebsocketCommunicator, within: float
) -> list[tuple[float, int, dict[str, Any]]]:
    """(arrival time, bytes, message) of every frame until the server closes the socket."""
    frames = []
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"the socket did not close within {within}s ({len(frames)} frames)"
        output = await communicator.receive_output(timeout=left)
        if output["type"] == "websocket.close":
            assert output.get("code", 1000) == 1000
            return frames
        text = output["text"]
        frames.append((time.monotonic(), len(text.encode()), json.loads(text)))


def stored_counts(run_id: Any) -> dict[str, Any]:
    """The rows' own counts: items per loop, steps per block, the run's top-level items."""
    items: dict[str, dict[str, int]] = {}
    for loop, status, n in (
        ItemRun.objects.filter(run_id=run_id)
        .values_list("loop_block", "status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        items.setdefault(loop, dict.fromkeys(COUNTS, 0))[status] = n
    steps: dict[str, dict[str, int]] = {}
    for block, status, n in (
        StepRun.objects.filter(run_id=run_id)
        .values_list("block_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        steps.setdefault(block, dict.fromkeys(COUNTS, 0))[status] = n
    return {"items": items, "steps": steps}


def counts_of(state: dict[str, Any]) -> dict[str, int]:
    return {k: state[k] for k in COUNTS}


async def test_a_big_run_keeps_every_frame_small_and_ends_with_the_stored_counts(
    owner: Any,
) -> None:
    # 100,000 is the acceptance size (SCALE_N=100000); the suite runs 20,000 (the Redis layer times out reading under that load on a shared box).
    n = int(os.environ.get("SCALE_N", "20000"))
    graph = burst_graph()
    graph["blocks"] = graph["blocks"][:2]  # an empty body: the cheapest item there is
    run = await sync_to_async(new_run)(owner, [{"v": i} for i in range(n)], graph)
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=10))[0]

    reader = asyncio.create_task(frames_until_close(communicator, within=600))
    started = time.monotonic()
    # On a thread of its own, as the web process's executor runs it: the socket's loop stays
    # free to read the channel layer while the items run.
    await asyncio.to_thread(asyncio.run, execute_run(run.pk))
    frames = await reader
    elapsed = time.monotonic() - started

    sizes = [size for _, size, _ in frames]
    assert max(sizes) < FRAME_LIMIT, max(sizes)
    deltas = [(at, m) for at, _, m in frames if m["type"] == "delta"]
    assert len(deltas) <= elapsed * 10 + 2, (len(deltas), elapsed)
    # No second holds more than 10 deltas (+1 for a window straddling two flushes).
    times = [at for at, _ in deltas]
    assert all(sum(1 for t in times[i:] if t - times[i] < 1.0) <= 11 for i in range(len(times))), (
        "more than 10 deltas in one second"
    )
    assert sum(len(m["items"]) for _, m in deltas) < n  # items travel over REST, not here

    final = frames[-1][2]
    assert final["type"] == "snapshot" and final["final"] is True
    stored = await sync_to_async(stored_counts)(run.pk)
    assert stored["items"]["loop"] == {**dict.fromkeys(COUNTS, 0), "succeeded": n}
    assert counts_of(final["run"]["progress"]) == stored["items"]["loop"]
    assert final["run"]["progress"]["total"] == n
    assert counts_of(final["blocks"]["loop"]) == stored["items"]["loop"]
    assert counts_of(final["loops"]["loop"]) == stored["items"]["loop"]
    assert final["loops"]["loop"]["max_concurrent"] == 50
    assert final["blocks"]["loop"]["status"] == "succeeded"
    assert final["failed"] == [] and len(final["recent"]) == 50
    row = await Run.objects.aget(pk=run.pk)
    assert (row.total, row.succeeded, row.failed, row.running) == (n, n, 0, 0)
    await communicator.disconnect()
    await close_db()


async def test_big_item_data_is_trimmed_with_a_marker_in_frames(owner: Any) -> None:
    blob = "x" * 20_000
    run = await sync_to_async(new_run)(owner, [{"v": i, "blob": blob} for i in range(300)])
    await execute_run(run.pk)
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    communicator = await open_socket(run.pk, cookie)
    assert (await communicator.connect(timeout=10))[0]
    frames = await frames_until_close(communicator, within=20)
    ((_, size, snapshot),) = frames
    assert size < FRAME_LIMIT
    data = snapshot["items"][0]["data"]
    assert data["$trimmed"] is True and data["bytes"] > 20_000 and len(data["preview"]) == 200
    await communicator.disconnect()
    await close_db()


async def test_a_cancel_at_a_quarter_accounts_for_every_item(
    owner: Any, simulator: RunningSimulator
) -> None:
    n = 200
    graph = lookup_graph()
    graph["blocks"][1]["config"]["max_concurrent"] = 4
    run = await sync_to_async(new_run)(
        owner, [{"domain": f"d{i}.example"} for i in range(n)], graph
    )
    task = asyncio.create_task(execute_run(run.pk))

    deadline = time.monotonic() + 60
    while await ItemRun.objects.filter(run_id=run.pk, status="succeeded").acount() < n // 4:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    task.cancel()  # what the in-process executor's cancel does
    with pytest.raises(asyncio.CancelledError):
        await task

    stored = await Run.objects.aget(pk=run.pk)
    assert stored.status == "cancelled"
    rows = await sync_to_async(stored_counts)(run.pk)
    items = rows["items"]["loop"]
    assert sum(items.values()) == n  # every item has a row, never-started ones included
    assert items["running"] == 0 and items["not_started"] > n // 2
    assert items["succeeded"] >= n // 4 and items["cancelled"] <= 4
    progress = stored.progress
    assert counts_of(progress) == items and progress["total"] == n
    assert counts_of(stored.blocks["loop"]) == items
    assert counts_of(stored.blocks["fetch"]) == rows["steps"]["fetch"]

    never = ItemRun.objects.filter(run_id=run.pk, status="not_started")
    first = await never.order_by("index").afirst()
    assert first is not None and first.started_at is None
    assert "the run was cancelled before this item began" in first.error

    # The snapshot the editor gets, and the item list's filters, say the same.
    from engine.snapshots import run_snapshot

    snapshot = await sync_to_async(run_snapshot)(run.pk)
    assert snapshot["final"] and counts_of(snapshot["run"]["progress"]) == items
    assert snapshot["blocks"]["fetch"]["status"] == "partially_succeeded"  # never "cancelled"
    from rest_framework.test import APIClient

    def listed(status: str) -> int:
        client = APIClient()
        client.force_authenticate(owner)
        return client.get(f"/api/runs/{run.pk}/items/", {"status": status}).json()["count"]

    for status in COUNTS:
        assert await sync_to_async(listed)(status) == items[status], status
    await close_db()
