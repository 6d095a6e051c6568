"""The workflow websocket, `/ws/workflows/<id>/`: an open editor hears of every run of its
workflow, whatever started it (webhook, api, cli, retry), as it starts, while it runs (at
most once a second) and when it ends. Server → client only; docs/run-protocol.md.

Messages: `{"type": "hello", "last_run", "version", "published_version", "draft_differs"}`
on connect, then `{"type": "run.started" | "run.progress" | "run.ended", "run": RunSummary}`,
and `{"type": "workflow.changed", "version", "published_version", "draft_differs"}` when the
workflow is saved (a new draft version) or published, by this editor or any other. Publishers
(builder/services.py on a run's creation, a save or a publish; engine/store.py) send only
ids; the summary and the numbers are read here, from the database, so a notice never carries
stale or unbounded data, and the same numbers are never told twice.

With the in-memory layer (`make run` without `REDIS_URL`) a run created or executed by
another process (the CLI in another shell) publishes where nobody listens: the consumer then
also reads the workflow's unfinished runs and those created or ended since its previous look
every `LOCAL_POLL_SECONDS`, and sends what changed; likewise the workflow's version numbers.
Each run's last notice is remembered, and the numbers last told, so the two ways never say one
thing twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db.models import Q
from django.utils import timezone

from builder.models import Workflow
from builder.selectors import workflow_get
from builder.serializers import WorkflowSerializer
from engine.consumers import LOCAL_POLL_SECONDS, owned_object_id, process_local
from engine.db_calls import db_call
from engine.models import FINAL_STATUSES, Run
from engine.snapshots import run_summary
from engine.store import workflow_group_name

log = logging.getLogger(__name__)

EVENTS = ("run.started", "run.progress", "run.ended")
# The most runs one look reads: a workflow's unfinished runs and those created since the
# socket opened (a burst of CLI runs beyond it is caught up over the next looks).
POLL_RUNS = 50
# Runs whose last notice is remembered, past which ended ones no look reads are forgotten
# (one told again then says what it said before: harmless, and rare).
SAID_MAX = 1000
# A look reads again what was created or ended this long before the previous one: a row is
# committed a little after the time it carries.
LOOK_OVERLAP = dt.timedelta(seconds=5)


def _owned_workflow_id(user: Any, workflow_id: str) -> Any:
    return workflow_get(user, workflow_id).pk


def last_run_summary(workflow_id: Any) -> dict[str, Any] | None:
    run = Run.objects.select_related("version").filter(workflow_id=workflow_id).first()
    return run_summary(run) if run is not None else None


def _summary(workflow_id: Any, run_id: str) -> dict[str, Any] | None:
    run = Run.objects.select_related("version").filter(pk=run_id, workflow_id=workflow_id).first()
    return run_summary(run) if run is not None else None


def _changed_runs(workflow_id: Any, since: dt.datetime) -> list[dict[str, Any]]:
    """Summaries of the workflow's runs that are unfinished, or were created or ended since
    `since`, oldest first: what a look reads is bounded by the time between looks, not by
    how long the socket has been open."""
    runs = (
        Run.objects.select_related("version")
        .filter(workflow_id=workflow_id)
        .filter(
            Q(created_at__gte=since) | Q(finished_at__gte=since) | ~Q(status__in=FINAL_STATUSES)
        )
        .order_by("-created_at")[:POLL_RUNS]
    )
    return [run_summary(run) for run in reversed(runs)]


def _unfinished_runs(workflow_id: Any, before: dt.datetime) -> list[dict[str, Any]]:
    """Summaries of the workflow's unfinished runs created before `before`."""
    runs = (
        Run.objects.select_related("version")
        .filter(workflow_id=workflow_id, created_at__lt=before)
        .exclude(status__in=FINAL_STATUSES)
        .order_by("-created_at")[:POLL_RUNS]
    )
    return [run_summary(run) for run in runs]


def workflow_numbers(workflow_id: Any) -> tuple[Any, Any] | None:
    """The ids of the workflow's draft and live versions (cheap: what a look compares)."""
    row = (
        Workflow.objects.filter(pk=workflow_id)
        .values_list("current_version_id", "published_version_id")
        .first()
    )
    return (row[0], row[1]) if row is not None else None


def workflow_state(workflow_id: Any) -> dict[str, Any] | None:
    """The draft's number, the live one's (or None) and whether the draft's graph is not the
    live one: what the editor's header says, as the workflow serializer says it."""
    workflow = (
        Workflow.objects.select_related("current_version", "published_version")
        .filter(pk=workflow_id)
        .first()
    )
    if workflow is None:
        return None
    serializer = WorkflowSerializer()
    return {
        "version": serializer.get_version(workflow),
        "published_version": serializer.get_published_version(workflow),
        "draft_differs": serializer.get_draft_differs(workflow),
        "ids": (workflow.current_version_id, workflow.published_version_id),
    }


def _said(summary: dict[str, Any]) -> str:
    """What a notice about a run shows, whole (its `retries` change with nothing else when
    it is retried): another notice is due when this changes."""
    return json.dumps(summary, sort_keys=True, default=str)


class WorkflowConsumer(AsyncJsonWebsocketConsumer):
    workflow_id: Any = None
    group: str | None = None
    poller: asyncio.Task[None] | None = None
    # The version ids last told (`hello` or `workflow.changed`): the same are not told again.
    told: tuple[Any, Any] | None = None

    async def connect(self) -> None:
        self.workflow_id = await owned_object_id(self, _owned_workflow_id, "workflow_id")
        if self.workflow_id is None:
            return
        self.group = workflow_group_name(self.workflow_id)
        # Each run's last notice sent (`_said`), and since when new runs are looked for.
        self.said: dict[str, str] = {}
        self.since = timezone.now()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        last = await db_call(last_run_summary, self.workflow_id)
        if last is not None:
            self.said[last["id"]] = _said(last)
        state = await db_call(workflow_state, self.workflow_id)
        numbers: dict[str, Any] = {}
        if state is not None:
            self.told = state.pop("ids")
            numbers = state
        await self.send_json({"type": "hello", "last_run": last, **numbers})
        if process_local(self.channel_layer):
            self.poller = asyncio.create_task(self._poll())

    async def disconnect(self, code: int) -> None:
        if self.poller is not None:
            self.poller.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _poll(self) -> None:
        """Runs other processes started or moved, which their publishes did not bring here."""
        try:  # what was unfinished before the socket opened is known: only its changes are told
            for summary in await db_call(_unfinished_runs, self.workflow_id, self.since):
                self.said.setdefault(summary["id"], _said(summary))
        except Exception:
            log.warning("workflow %s: could not look for runs", self.workflow_id, exc_info=True)
        while True:
            await asyncio.sleep(LOCAL_POLL_SECONDS)
            looked_at = timezone.now()
            try:
                summaries = await db_call(_changed_runs, self.workflow_id, self.since)
            except Exception:
                log.warning("workflow %s: could not look for runs", self.workflow_id, exc_info=True)
                continue
            self.since = max(self.since, looked_at - LOOK_OVERLAP)
            for summary in summaries:
                await self._tell(summary)
            try:
                if await db_call(workflow_numbers, self.workflow_id) not in (None, self.told):
                    await self._tell_changed()
            except Exception:
                log.warning(
                    "workflow %s: could not look for saves", self.workflow_id, exc_info=True
                )
            if len(self.said) > SAID_MAX:  # ended runs no look reads any more are forgotten
                seen = {summary["id"] for summary in summaries}
                for run_id in [k for k in self.said if k not in seen]:
                    if json.loads(self.said[run_id])["status"] in FINAL_STATUSES:
                        del self.said[run_id]

    async def _tell(self, summary: dict[str, Any], event: str | None = None) -> None:
        """The notice `summary` calls for, unless the last one sent said the same. `event`:
        what this process published; None: what a look found, told as what changed since
        the last notice (a run first found ended is told as started, then ended)."""
        before = self.said.get(summary["id"])
        now = _said(summary)
        if before == now:
            return
        self.said[summary["id"]] = now
        final = summary["status"] in FINAL_STATUSES
        if event is None or (event == "run.started" and before is not None):
            if before is None:
                await self.send_json({"type": "run.started", "run": summary})
                if not final:
                    return
            event = "run.ended" if final else "run.progress"
        await self.send_json({"type": event, "run": summary})

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
        if summary is None:
            return
        if self.poller is None:  # the layer hears every process: each notice as it comes
            await self.send_json({"type": event, "run": summary})
        else:
            await self._tell(summary, event)

    async def _tell_changed(self) -> None:
        """`workflow.changed` with the numbers now in the database, unless they are the
        ones last told."""
        state = await db_call(workflow_state, self.workflow_id)
        if state is None:
            return
        ids = state.pop("ids")
        if ids == self.told:
            return
        self.told = ids
        await self.send_json({"type": "workflow.changed", **state})

    async def workflow_changed(self, message: dict[str, Any]) -> None:
        """A save or a publish, this process's or (with a shared layer) another's."""
        await self._tell_changed()
