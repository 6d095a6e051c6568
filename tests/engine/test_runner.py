"""execute_run always ends a run properly: outputs with the final status, open work marked
cancelled, storage errors logged rather than fatal, and a cancel from another process obeyed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.db import connections
from rest_framework.authtoken.models import Token

from builder.services import run_create, workflow_create
from engine.models import ItemRun, Run, StepRun
from engine.publish import web_loop
from engine.runner import execute_run, executor
from klyntos.asgi import application
from simulator.testing import RunningSimulator
from tests.engine.graphs import burst_graph
from tests.engine.test_consumers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def make_run(
    owner: Any, blocks: list[dict[str, Any]], edges: list[tuple[str, str]], body: Any
) -> Run:
    graph = {"blocks": blocks, "edges": [{"source": s, "target": t} for s, t in edges]}
    workflow = workflow_create(owner=owner, name="runner", graph=graph)
    run, _ = run_create(workflow=workflow, input=body)
    return run


def held_lookups(owner: Any) -> Run:
    blocks = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
        {
            "id": "loop",
            "type": "loop",
            "name": "loop",
            "config": {"items": "<webhook.body.items>", "max_concurrent": 3},
        },
        {
            "id": "fetch",
            "type": "http",
            "name": "fetch",
            "parent": "loop",
            "config": {
                "url": "https://api.clearbit.com/v2/companies/find?domain=<item.d>",
                "headers": {"Authorization": "Bearer k"},
            },
        },
    ]
    return make_run(
        owner, blocks, [("webhook", "loop")], {"items": [{"d": f"d{i}.io"} for i in range(6)]}
    )


async def wait_for(predicate: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_cancel_written_by_another_process_stops_the_run(
    owner: Any, simulator: RunningSimulator
) -> None:
    simulator.control.configure(hold=[{"endpoint": "clearbit"}])
    run = await sync_to_async(held_lookups)(owner)
    task = asyncio.create_task(execute_run(run.pk))

    async def three_in_flight() -> bool:
        return await ItemRun.objects.filter(run_id=run.pk, status="running").acount() == 3

    await wait_for(three_in_flight)
    # What run_cancel does when the run lives on another process's executor.
    await Run.objects.filter(pk=run.pk).aupdate(status="cancelled")
    done, _ = await asyncio.wait([task], timeout=10)  # the store notices and cancels the engine
    simulator.control.release()
    assert task in done and task.cancelled()

    stored = await Run.objects.aget(pk=run.pk)
    assert stored.status == "cancelled" and stored.running == 0 and stored.finished_at is not None
    assert not await ItemRun.objects.filter(run_id=run.pk, status="running").aexists()
    assert await ItemRun.objects.filter(run_id=run.pk, status="cancelled").acount() == 3
    assert not await StepRun.objects.filter(
        run_id=run.pk, status__in=["running", "retrying"]
    ).aexists()
    await sync_to_async(connections.close_all)()


async def test_the_final_status_is_stored_with_the_outputs(
    owner: Any, simulator: RunningSimulator
) -> None:
    run = await sync_to_async(held_lookups)(owner)
    statuses: list[tuple[str, bool]] = []

    async def watch() -> None:
        while True:
            row = await Run.objects.only("status", "outputs").aget(pk=run.pk)
            statuses.append((row.status, bool(row.outputs)))
            if row.status == "succeeded":
                return
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await execute_run(run.pk)
    await asyncio.wait_for(watcher, timeout=5)
    assert ("succeeded", False) not in statuses
    await sync_to_async(connections.close_all)()


async def test_a_runs_end_is_logged_in_one_line_with_its_counts(
    owner: Any, simulator: RunningSimulator, caplog: Any
) -> None:
    """What an operator looks for first in a worker's log: which run ended, how, with what."""
    run = await sync_to_async(held_lookups)(owner)
    with caplog.at_level("INFO", logger="engine.runner"):
        await execute_run(run.pk)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"run {run.pk} ")]
    assert line.startswith(f"run {run.pk} succeeded: 6 items (6 succeeded) in ")
    assert line.endswith(" s")
    await sync_to_async(connections.close_all)()


async def test_a_runs_end_is_stored_before_its_clients_close(owner: Any) -> None:
    # Closing a run's HTTP session and data lease is no part of its end: they close once the
    # end is readable (before, the end waited for them; then it competed with them).
    from engine.core.outbound import OutboundFactory
    from engine.core.services import Services
    from engine.runner import _close
    from engine.store import RunStore

    webhook = {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}
    run = await sync_to_async(make_run)(owner, [webhook], [], {})
    seen_when_closing: list[str] = []

    class Closing(Services):
        async def aclose(self) -> None:
            seen_when_closing.append((await Run.objects.only("status").aget(pk=run.pk)).status)
            return await super().aclose()

    store = RunStore(run.pk, workflow_id=run.workflow_id, publish=False)
    store.start()
    services = Closing(outbound=OutboundFactory())
    await asyncio.wait_for(_close(store, services, run.pk, {"status": "succeeded"}), timeout=30)
    assert seen_when_closing == ["succeeded"]
    assert services.outbound._closed
    await sync_to_async(connections.close_all)()


def test_text_the_database_refuses_is_stored_cleaned_and_the_run_still_ends(owner: Any) -> None:
    blocks = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
        # A JSON literal with a NUL character: PostgreSQL's jsonb refuses it as is.
        {
            "id": "nul",
            "type": "transform",
            "name": "nul",
            "config": {"input": "x", "expression": '`"a\\u0000b"`'},
        },
    ]
    run = make_run(owner, blocks, [("webhook", "nul")], {})
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.outputs["nul"] == {"result": "a\ufffdb"}
    assert StepRun.objects.get(run=run, block_id="nul").output == {"result": "a\ufffdb"}


# --- the executor's own loop (issue 12: the web server stays responsive during big runs) ---


async def test_runs_execute_on_their_own_loop_and_still_reach_websockets_in_memory(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """`make run`'s in-memory channel layer only delivers on the loop the consumers wait on:
    the executor runs elsewhere and its deltas hop over to that loop."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    run = await sync_to_async(held_lookups)(owner)
    cookie = await sync_to_async(session_cookie)("owner", "pw-owner-123")
    socket = WebsocketCommunicator(
        application,
        f"/ws/runs/{run.pk}/",
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)],
    )
    assert (await socket.connect(timeout=10))[0]
    first = await socket.receive_json_from(timeout=10)
    assert first["type"] == "snapshot" and not first["final"]
    here = asyncio.get_running_loop()
    assert web_loop() is here  # the ASGI entry recorded the server's loop

    future = executor.submit(run.pk)
    assert executor.loop is not here
    await asyncio.wrap_future(future)

    messages = []
    while True:
        output = await socket.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            break
        messages.append(json.loads(output["text"]))
    assert any(m["type"] == "delta" for m in messages), messages
    assert messages[-1]["type"] == "snapshot" and messages[-1]["final"] is True
    assert messages[-1]["run"]["status"] == "succeeded"
    await sync_to_async(connections.close_all)()


def cpu_only_run(owner: Any, items: int) -> Run:
    """A loop of transforms: nothing in it waits for I/O, so nothing in it would suspend."""
    workflow = workflow_create(owner=owner, name="cpu", graph=burst_graph())
    run, _ = run_create(
        workflow=workflow,
        input={"items": [{"v": i} for i in range(items)]},
        options={"max_concurrent": 1000},
    )
    return run


async def test_a_request_is_answered_while_a_cpu_heavy_run_is_in_flight(owner: Any) -> None:
    token = await sync_to_async(Token.objects.create)(user=owner)
    run = await sync_to_async(cpu_only_run)(owner, 100_000)
    executor.submit(run.pk)
    try:

        async def progressing() -> bool:
            # The store's flusher gets turns amid items that never suspend (give_way).
            return await Run.objects.filter(pk=run.pk, succeeded__gt=0).aexists()

        await wait_for(progressing, within=60)
        request = HttpCommunicator(
            application,
            "GET",
            "/api/workflows/",
            headers=[(b"host", b"testserver"), (b"authorization", f"Token {token.key}".encode())],
        )
        # Generous: the point is an answer during the run, not a latency figure (see bench e).
        response = await request.get_response(timeout=10)
        assert response["status"] == 200
        stored = await Run.objects.aget(pk=run.pk)
        assert stored.status == "running", "the run ended before the request: make it longer"
    finally:
        executor.cancel(run.pk)

        async def ended() -> bool:  # the future is cancelled at once; the run ends after
            return await Run.objects.filter(pk=run.pk, finished_at__isnull=False).aexists()

        await wait_for(ended, within=60)
        await asyncio.sleep(0.5)  # the store thread closes its connection after the last write
        await sync_to_async(connections.close_all)()


def test_the_executor_keeps_an_owners_data_connection_for_their_next_run(owner: Any) -> None:
    from engine.runner import _pools, executor

    blocks = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
        {"id": "q", "type": "database", "name": "q", "config": {"sql": "SELECT 1 AS one"}},
    ]
    held = []
    for _ in range(2):
        run = make_run(owner, blocks, [("webhook", "q")], {})
        executor.submit(run.pk).result(30)
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        assert executor._loop is not None
        pools = _pools[executor._loop]
        mine = [k for k in pools.keys() if k.endswith(f":{owner.pk}")]
        assert len(mine) == 1
        held.append(pools._entries[mine[0]])
    # The second run leased the pool the first one opened, which stayed open between them.
    assert held[0] is held[1] and held[0].leases == 0
    assert held[0].connection._pool is not None  # type: ignore[attr-defined]


def test_the_retry_policy_and_output_limit_are_settings() -> None:
    from django.test import override_settings

    from engine.config import retry_policy

    with override_settings(
        KLYNTOS_RETRY_ATTEMPTS=5,
        KLYNTOS_RETRY_BASE_DELAY=0.5,
        KLYNTOS_RETRY_MAX_DELAY=4,
        KLYNTOS_RETRY_AFTER_MAX=7,
    ):
        policy = retry_policy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (5, 0.5, 4)
    assert policy.max_retry_after == 7


def test_the_executor_claims_its_runs_over_one_kept_connection(
    owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection opened per claim was 10-20 ms of every run's start.
    from engine import leases

    claim = leases.claim
    backends: list[int] = []

    def recording(run_id: Any, lease_owner: str) -> bool:
        taken = claim(run_id, lease_owner)
        backends.append(connections["default"].connection.info.backend_pid)
        return taken

    monkeypatch.setattr(leases, "claim", recording)
    webhook = {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}
    for _ in range(2):
        run = make_run(owner, [webhook], [], {})
        executor.submit(run.pk).result(30)
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
    assert len(backends) == 2 and backends[0] == backends[1]


def test_a_run_created_claimed_is_executed_without_a_claim_of_its_own(
    owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI creates its run claimed by itself: no claim to make when it starts it.
    from engine import leases
    from engine.runner import created_claimed

    def no_claim(run_id: Any, lease_owner: str) -> bool:
        raise AssertionError("claimed again")

    webhook = {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}
    graph = {"blocks": [webhook], "edges": []}
    workflow = workflow_create(owner=owner, name="claimed", graph=graph)
    run, _ = run_create(workflow=workflow, input={"b": 1, "a": 2}, lease_owner="me:1:x")
    assert (run.status, run.lease_owner) == ("running", "me:1:x") and run.lease_expires
    monkeypatch.setattr(leases, "claim", no_claim)
    claim = created_claimed(run)
    assert claim.owner == "me:1:x" and claim.spec is not None and claim.error is None
    asyncio.run(execute_run(run.pk, claim=claim))
    run.refresh_from_db()
    assert run.status == "succeeded" and run.lease_owner == ""
    assert run.outputs["webhook"] == {"body": {"a": 2, "b": 1}}


def test_a_claimed_run_that_cannot_be_loaded_fails_with_the_reason(
    owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import runner

    webhook = {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}
    workflow = workflow_create(owner=owner, name="broken", graph={"blocks": [webhook], "edges": []})
    run, _ = run_create(workflow=workflow, input={}, lease_owner="me:1:y")

    def broken(run_id: Any) -> Any:
        raise RuntimeError("the version cannot be read")

    monkeypatch.setattr(runner, "_load", broken)
    claim = runner.created_claimed(run)
    assert claim.spec is None and claim.error is not None
    asyncio.run(execute_run(run.pk, claim=claim))
    run.refresh_from_db()
    assert run.status == "failed" and "the version cannot be read" in run.error


async def test_a_crash_message_is_masked_with_the_runs_own_secrets_only(
    owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from builder.services import secret_set
    from engine import secrets_registry
    from engine.core.executor import Executor

    await sync_to_async(secret_set)(owner=owner, name="KEY", value="own-key-8311")
    secrets_registry.register(["another-owners-9422"])  # seen by this process for someone else
    blocks = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
        {
            "id": "t",
            "type": "transform",
            "name": "t",
            "config": {"input": "<env.KEY>", "expression": "@"},
        },
    ]
    run = await sync_to_async(make_run)(owner, blocks, [("webhook", "t")], {})

    async def crash(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broke with own-key-8311 and another-owners-9422")

    monkeypatch.setattr(Executor, "run", crash)
    await execute_run(run.pk)
    row = await Run.objects.aget(pk=run.pk)
    assert row.status == "failed"
    assert "own-key-8311" not in row.error and "[redacted]" in row.error
    # Masking another owner's value here would confirm a guess at it.
    assert "another-owners-9422" in row.error
    await sync_to_async(connections.close_all)()
