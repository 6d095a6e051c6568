"""The workflow websocket, `/ws/workflows/<id>/`: an open editor hears of every run of its
workflow, whatever started it (webhook, api, cli, retry), as it starts, while it runs (at
most once a second) and when it ends. Server → client only; docs/run-protocol.md.

Messages: `{"type": "hello", "last_run"}` on connect, then `{"type": "run.started" |
"run.progress" | "run.ended", "run": RunSummary}`. Publishers (builder/services.py on a
run's creation, engine/store.py) send only the run's id; the summary is read here, from the
database, so a notice never carries stale or unbounded data.
"""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from builder.selectors import workflow_get
from engine.consumers import owned_object_id
from engine.db_calls import db_call
from engine.models import Run
from engine.snapshots import run_summary
from engine.store import workflow_group_name

EVENTS = ("run.started", "run.progress", "run.ended")


def _owned_workflow_id(user: Any, workflow_id: str) -> Any:
    return workflow_get(user, workflow_id).pk


def last_run_summary(workflow_id: Any) -> dict[str, Any] | None:
    run = Run.objects.select_related("version").filter(workflow_id=workflow_id).first()
    return run_summary(run) if run is not None else None


def _summary(workflow_id: Any, run_id: str) -> dict[str, Any] | None:
    run = Run.objects.select_related("version").filter(pk=run_id, workflow_id=workflow_id).first()
    return run_summary(run) if run is not None else None


class WorkflowConsumer(AsyncJsonWebsocketConsumer):
    workflow_id: Any = None
    group: str | None = None

    async def connect(self) -> None:
        self.workflow_id = await owned_object_id(self, _owned_workflow_id, "workflow_id")
        if self.workflow_id is None:
            return
        self.group = workflow_group_name(self.workflow_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(
            {"type": "hello", "last_run": await db_call(last_run_summary, self.workflow_id)}
        )

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """One-way: whatever the client sends is ignored."""

    async def workflow_run(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        run_id = message.get("run_id")
        if event not in EVENTS or not isinstance(run_id, str):
            return
        summary = await db_call(_summary, self.workflow_id, run_id)
        if summary is not None:
            await self.send_json({"type": event, "run": summary})
