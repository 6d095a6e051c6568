"""`workflow.changed` on the workflow socket: a save (a new draft version) or a publish,
by this editor or any other, reaches every open editor of the workflow with the numbers the
database holds once it is committed: the header's live/draft status is never stale."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from rest_framework.test import APIClient

from builder import services
from builder.services import workflow_create, workflow_save
from tests.builder.test_workflow_socket import _cookie, _messages_until, _socket, in_memory
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

__all__ = ["in_memory"]  # the fixture, used by name


def _edited(graph: dict[str, Any], expression: str) -> dict[str, Any]:
    graph = copy.deepcopy(graph)
    graph["blocks"][2]["config"]["expression"] = expression
    return graph


def _changed(m: dict[str, Any]) -> bool:
    return m["type"] == "workflow.changed"


def _numbers(m: dict[str, Any]) -> tuple[Any, Any, Any]:
    return (m["version"], m["published_version"], m["draft_differs"])


def _api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _scenario(user: Any, workflow: Any) -> list[dict[str, Any]]:
    """Hello, then a save elsewhere (v2 draft), a publish of it from the Versions panel's
    endpoint, a restore of v1 as draft v3 and a republish of v2 that changes nothing."""
    cookie = _cookie(user)
    client = _api(user)

    def save(graph: dict[str, Any], base: int) -> None:
        answer = client.put(
            f"/api/workflows/{workflow.pk}/", {"graph": graph, "base_version": base}, format="json"
        )
        assert answer.status_code == 200, answer.content

    def post(path: str, body: dict[str, Any]) -> None:
        answer = client.post(f"/api/workflows/{workflow.pk}/{path}", body, format="json")
        assert answer.status_code == 200, answer.content

    async def scenario() -> list[dict[str, Any]]:
        communicator = _socket(f"/ws/workflows/{workflow.pk}/", cookie)
        assert (await communicator.connect(timeout=10))[0]
        got = [await communicator.receive_json_from(timeout=10)]
        await sync_to_async(save)(_edited(burst_graph(), "[v]"), 1)
        got += await _messages_until(communicator, _changed)
        await sync_to_async(post)("publish/", {"version": 2})
        got += await _messages_until(communicator, _changed)
        await sync_to_async(post)("versions/1/restore/", {})
        got += await _messages_until(communicator, _changed)
        await sync_to_async(post)("publish/", {"version": 2})  # already live: nothing new
        assert await communicator.receive_nothing(timeout=0.5)  # nothing said twice
        await communicator.disconnect()
        return got

    return async_to_sync(scenario)()


EXPECTED = [
    ("hello", (1, 1, False)),
    ("workflow.changed", (2, 1, True)),
    ("workflow.changed", (2, 2, False)),
    ("workflow.changed", (3, 2, True)),
]


def test_saves_and_publishes_reach_the_open_editor(user: Any) -> None:
    """The layer every process shares (Redis): each notice as it is published."""
    workflow = workflow_create(owner=user, name="shared", graph=burst_graph())
    messages = _scenario(user, workflow)
    assert [(m["type"], _numbers(m)) for m in messages] == EXPECTED


def test_saves_and_publishes_reach_the_open_editor_in_memory(user: Any, in_memory: None) -> None:
    """`make run`: the publish and the socket's own looks find the same change; it is told
    once."""
    workflow = workflow_create(owner=user, name="local", graph=burst_graph())
    messages = _scenario(user, workflow)
    assert [(m["type"], _numbers(m)) for m in messages] == EXPECTED


def test_a_save_of_another_process_is_found_by_a_look(
    user: Any, in_memory: None, monkeypatch: Any
) -> None:
    """The CLI or another server process saves: its publish goes to its own memory; the
    socket's look finds the new numbers."""
    workflow = workflow_create(owner=user, name="cli", graph=burst_graph())
    cookie = _cookie(user)

    async def unheard(*args: Any) -> None:
        return None

    async def scenario() -> list[dict[str, Any]]:
        communicator = _socket(f"/ws/workflows/{workflow.pk}/", cookie)
        assert (await communicator.connect(timeout=10))[0]
        await communicator.receive_json_from(timeout=10)
        monkeypatch.setattr(services, "publish_workflow_changed", unheard)
        await sync_to_async(workflow_save)(
            workflow=workflow, graph=_edited(burst_graph(), "[v, v]"), base_version=1, publish=True
        )
        got = await _messages_until(communicator, _changed)
        assert await communicator.receive_nothing(timeout=0.4)
        await communicator.disconnect()
        return got

    messages = async_to_sync(scenario)()
    assert [_numbers(m) for m in messages] == [(2, 2, False)]


def test_nothing_is_published_before_the_commit_or_for_a_refused_save(
    user: Any, monkeypatch: Any
) -> None:
    workflow = workflow_create(owner=user, name="refused", graph=burst_graph())
    told: list[Any] = []

    async def publish(workflow_id: Any) -> None:
        told.append(workflow_id)

    monkeypatch.setattr(services, "publish_workflow_changed", publish)
    with pytest.raises(services.StaleVersion):
        workflow_save(workflow=workflow, graph=_edited(burst_graph(), "{w: v}"), base_version=7)
    assert told == []
    workflow_save(workflow=workflow, graph=_edited(burst_graph(), "{x: v}"), base_version=1)
    assert told == [workflow.pk]
