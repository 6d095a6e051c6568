"""The workflow socket with the in-memory layer (`make run` without REDIS_URL): runs another
process creates and executes (the CLI in another shell) reach an open editor by its own looks
at the database, and a run this process publishes is not announced twice."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from builder import services, workflow_socket
from builder.services import run_create, workflow_create
from engine import consumers
from engine.models import Run
from engine.runner import execute_run
from klyntos.asgi import application
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def in_memory(settings: Any, monkeypatch: Any) -> None:
    settings.CHANNEL_LAYERS = IN_MEMORY
    monkeypatch.setattr(workflow_socket, "LOCAL_POLL_SECONDS", 0.1)
    monkeypatch.setattr(consumers, "LOCAL_POLL_SECONDS", 0.1)


def _cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def _socket(path: str, cookie: bytes) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, path, headers=headers)


async def _messages_until(
    communicator: WebsocketCommunicator, done: Any, within: float = 10.0
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while not got or not done(got[-1]):
        left = deadline - time.monotonic()
        assert left > 0, f"no end within {within}s: {[m['type'] for m in got]}"
        got.append(await communicator.receive_json_from(timeout=left))
    return got


def test_a_run_of_another_process_reaches_the_open_editor(
    user: Any, in_memory: None, monkeypatch: Any
) -> None:
    """Its creation's publish goes to the other process's memory: the socket's look finds
    the run, then its progress and its end, each told once."""
    workflow = workflow_create(owner=user, name="cli", graph=burst_graph())
    cookie = _cookie(user)

    async def unheard(*args: Any) -> None:  # published in the other process's memory
        return None

    async def scenario() -> list[dict[str, Any]]:
        communicator = _socket(f"/ws/workflows/{workflow.pk}/", cookie)
        assert (await communicator.connect(timeout=10))[0]
        hello = await communicator.receive_json_from(timeout=10)
        assert (hello["type"], hello["last_run"]) == ("hello", None)
        assert (hello["version"], hello["published_version"], hello["draft_differs"]) == (
            1,
            1,
            False,
        )
        monkeypatch.setattr(services, "publish_workflow_event", unheard)
        run, _ = await sync_to_async(run_create)(
            workflow=workflow, input={"items": [{"v": 1}]}, trigger="cli"
        )
        got = await _messages_until(communicator, lambda m: m["type"] == "run.started")
        await Run.objects.filter(pk=run.pk).aupdate(status="running", last_seq=5)
        got += await _messages_until(communicator, lambda m: m["type"] == "run.progress")
        await Run.objects.filter(pk=run.pk).aupdate(
            status="succeeded", last_seq=9, finished_at=timezone.now()
        )
        got += await _messages_until(communicator, lambda m: m["type"] == "run.ended")
        assert await communicator.receive_nothing(timeout=0.4)  # nothing said twice
        await communicator.disconnect()
        return got

    messages = async_to_sync(scenario)()
    assert [(m["type"], m["run"]["status"]) for m in messages] == [
        ("run.started", "queued"),
        ("run.progress", "running"),
        ("run.ended", "succeeded"),
    ]
    assert messages[0]["run"]["trigger"] == "cli"


def test_a_run_this_process_publishes_is_announced_once(user: Any, in_memory: None) -> None:
    workflow = workflow_create(owner=user, name="here", graph=burst_graph())
    cookie = _cookie(user)

    async def scenario() -> list[dict[str, Any]]:
        communicator = _socket(f"/ws/workflows/{workflow.pk}/", cookie)
        assert (await communicator.connect(timeout=10))[0]
        await communicator.receive_json_from(timeout=10)
        run, _ = await sync_to_async(run_create)(
            workflow=workflow, input={"items": [{"v": i} for i in range(20)]}, trigger="api"
        )
        await execute_run(run.pk)
        got = await _messages_until(communicator, lambda m: m["type"] == "run.ended")
        assert await communicator.receive_nothing(timeout=0.4)
        await communicator.disconnect()
        return got

    messages = async_to_sync(scenario)()
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "run.started" and kinds.count("run.started") == 1
    assert kinds[-1] == "run.ended" and kinds.count("run.ended") == 1
    assert messages[-1]["run"]["status"] == "succeeded"


def test_a_run_socket_catches_up_with_a_run_another_process_executes(
    user: Any, in_memory: None
) -> None:
    """No delta reaches it: a fresh snapshot once the stored seq moves, then the final one."""
    workflow = workflow_create(owner=user, name="cli", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": [{"v": 1}]}, trigger="cli")
    cookie = _cookie(user)

    async def scenario() -> list[dict[str, Any]]:
        communicator = _socket(f"/ws/runs/{run.pk}/", cookie)
        assert (await communicator.connect(timeout=10))[0]
        got = [await communicator.receive_json_from(timeout=10)]
        await Run.objects.filter(pk=run.pk).aupdate(
            status="running", last_seq=4, started_at=timezone.now()
        )
        got += await _messages_until(communicator, lambda m: m["seq"] == 4)
        assert await communicator.receive_nothing(timeout=0.4)  # the seq did not move again
        await Run.objects.filter(pk=run.pk).aupdate(
            status="succeeded", last_seq=7, finished_at=timezone.now()
        )
        got += await _messages_until(communicator, lambda m: m.get("final"))
        await communicator.disconnect()
        return got

    messages = async_to_sync(scenario)()
    assert [(m["type"], m["seq"], m["final"], m["run"]["status"]) for m in messages] == [
        ("snapshot", 0, False, "queued"),
        ("snapshot", 4, False, "running"),
        ("snapshot", 7, True, "succeeded"),
    ]


def test_a_run_whose_retries_changed_is_told_again(user: Any, in_memory: None) -> None:
    """A retry changes nothing of its source run but `retries`: the source's notice still
    goes out (the History links the two both ways)."""
    from engine.store import publish_workflow_event

    workflow = workflow_create(owner=user, name="retried", graph=burst_graph())
    source, _ = run_create(workflow=workflow, input={"items": [{"v": 1}]}, trigger="api")
    async_to_sync(execute_run)(source.pk)
    cookie = _cookie(user)

    async def scenario() -> list[dict[str, Any]]:
        communicator = _socket(f"/ws/workflows/{workflow.pk}/", cookie)
        assert (await communicator.connect(timeout=10))[0]
        hello = await communicator.receive_json_from(timeout=10)
        assert hello["last_run"]["id"] == str(source.pk) and hello["last_run"]["retries"] == []
        await publish_workflow_event(workflow.pk, "run.progress", source.pk)  # unchanged
        assert await communicator.receive_nothing(timeout=0.3)
        retry = await Run.objects.acreate(
            owner=user,
            workflow=workflow,
            version_id=source.version_id,
            input=source.input,
            trigger="retry",
            retry_of=source,
        )
        await publish_workflow_event(workflow.pk, "run.progress", source.pk)
        got = await _messages_until(communicator, lambda m: m["run"]["id"] == str(source.pk))
        await communicator.disconnect()
        assert got[-1]["run"]["retries"] == [str(retry.pk)]
        return got

    messages = async_to_sync(scenario)()
    assert messages[-1]["type"] == "run.progress"  # as the retry published it
    assert messages[-1]["run"]["status"] == "succeeded"


def test_a_look_reads_what_changed_near_it_whatever_the_socket_s_age(user: Any) -> None:
    """Unfinished runs, and runs created or ended since the previous look: an editor left
    open for a day on a busy workflow does not read the day's runs every second."""
    import datetime as dt

    workflow = workflow_create(owner=user, name="busy", graph=burst_graph())
    now = timezone.now()
    long_ago = now - dt.timedelta(hours=1)

    def made(status: str, created: dt.datetime, finished: dt.datetime | None) -> str:
        run, _ = run_create(workflow=workflow, input={"items": []}, trigger="api")
        Run.objects.filter(pk=run.pk).update(
            status=status, created_at=created, finished_at=finished
        )
        return str(run.pk)

    old_done = made("succeeded", long_ago, long_ago)
    old_running = made("running", long_ago, None)
    old_just_ended = made("failed", long_ago, now)
    new_done = made("succeeded", now, now)
    since = now - dt.timedelta(seconds=1)
    found = {s["id"] for s in workflow_socket._changed_runs(workflow.pk, since)}
    assert found == {old_running, old_just_ended, new_done}
    assert old_done not in found


def test_a_run_running_before_the_editor_opened_is_told_when_another_process_ends_it(
    user: Any, in_memory: None
) -> None:
    workflow = workflow_create(owner=user, name="long", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": [{"v": 1}]}, trigger="cli")
    Run.objects.filter(pk=run.pk).update(status="running", last_seq=3)
    cookie = _cookie(user)

    async def scenario() -> list[dict[str, Any]]:
        communicator = _socket(f"/ws/workflows/{workflow.pk}/", cookie)
        assert (await communicator.connect(timeout=10))[0]
        hello = await communicator.receive_json_from(timeout=10)
        assert hello["last_run"]["status"] == "running"
        assert await communicator.receive_nothing(timeout=0.4)  # known, unchanged: nothing
        await Run.objects.filter(pk=run.pk).aupdate(
            status="succeeded", last_seq=8, finished_at=timezone.now()
        )
        got = await _messages_until(communicator, lambda m: m["type"] == "run.ended")
        await communicator.disconnect()
        return got

    messages = async_to_sync(scenario)()
    assert [(m["type"], m["run"]["status"]) for m in messages] == [("run.ended", "succeeded")]
