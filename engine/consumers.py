"""The run websocket, `/ws/runs/<id>/`: live state of one run, server → client only.

Messages (docs/run-protocol.md; every frame is bounded, whatever the number of items):
- a snapshot (engine/snapshots.py) on connect, read from the database; the last message is
  always a snapshot with `final: true` after which the server closes the socket (code 1000);
- `{"type": "delta", "seq", "run", "blocks", "loops", "items", "items_omitted", "steps"}`:
  what changed since the previous message, as published by engine/store.py; `seq` only
  grows; a delta whose `seq` is not above the last one sent (snapshot included) is dropped.

Refusals happen before the handshake is accepted: 4401 for an anonymous user, 4404 for a
run that is unknown or belongs to someone else (both look the same to the client).

The channel layer delivers at most once, so the stream cannot rely on seeing the final delta:
it also ends on a `run.ended` group message (sent once the run's last row update is stored),
and, as a safety net, a quiet stream checks the database every `WATCH_INTERVAL` seconds.
Deltas arriving closer together than `DELTA_INTERVAL` are merged into one.

The in-memory layer (no `REDIS_URL`: `make run`'s default) reaches only this process, so a
run executed by another one (`manage.py run_workflow` in another shell) publishes where no
consumer listens: with it, a quiet stream looks every `LOCAL_POLL_SECONDS` and sends a fresh
snapshot when the run's stored seq moved past what it sent.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import BaseChannelLayer, InMemoryChannelLayer
from django.http import Http404

from engine.db_calls import db_call
from engine.models import FINAL_STATUSES, Run
from engine.snapshots import bounded_frame, run_snapshot
from engine.store import WIRE_ITEMS, group_name

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# Seconds without any message after which the consumer looks at the run row itself.
WATCH_INTERVAL = 5.0
# Least seconds between two deltas on one socket: a little over the store's flush interval
# (0.1 s), because at exactly 0.1 s a one-second window seen by a client (its arrival times
# jitter) held 11 messages (bench i); at 0.11 s ten fill 0.99 s and the eleventh comes 0.1 s
# after the window.
DELTA_INTERVAL = 0.11
# With a layer that reaches only this process: how often a quiet stream reads the run row.
LOCAL_POLL_SECONDS = 1.0


def process_local(layer: BaseChannelLayer | None) -> bool:
    """Whether `layer` carries messages within this process only (the in-memory layer)."""
    return isinstance(layer, InMemoryChannelLayer)


async def owned_object_id(
    consumer: AsyncJsonWebsocketConsumer, owned_id: Callable[[Any, str], Any], url_kwarg: str
) -> Any | None:
    """The id of the object a socket asks for, when it is the signed-in user's; otherwise
    the socket is closed (4401 anonymous, 4404 not theirs) and None comes back."""
    user = consumer.scope.get("user")
    if user is None or not user.is_authenticated:
        await consumer.close(code=CLOSE_UNAUTHENTICATED)
        return None
    try:
        return await db_call(owned_id, user, consumer.scope["url_route"]["kwargs"][url_kwarg])
    except Http404:
        await consumer.close(code=CLOSE_NOT_FOUND)
        return None


def _owned_run_id(user: Any, run_id: str) -> Any:
    """The run's id if it is one of the user's runs; another user's run does not exist."""
    try:
        return (
            Run.objects.filter(owner=user)
            .values_list("pk", flat=True)
            .get(pk=uuid.UUID(str(run_id)))
        )
    except (Run.DoesNotExist, ValueError):
        raise Http404("no such run") from None


def _run_position(run_id: Any) -> tuple[bool, int]:
    """(whether the run ended, its stored seq); a deleted run counts as ended."""
    row = Run.objects.filter(pk=run_id).values_list("status", "last_seq").first()
    return (True, 0) if row is None else (row[0] in FINAL_STATUSES, row[1])


class RunConsumer(AsyncJsonWebsocketConsumer):
    run_id: Any = None
    group: str | None = None
    last_seq: int = -1
    done = False
    quiet_since = 0.0
    last_delta_at = float("-inf")
    pending: dict[str, Any] | None = None
    watcher: asyncio.Task[None] | None = None
    flusher: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.run_id = await owned_object_id(self, _owned_run_id, "run_id")
        if self.run_id is None:
            return
        # Join the group before reading the snapshot: a batch stored after the read is
        # published after it, so it reaches us; one stored before is in the snapshot and its
        # delta (seq <= snapshot seq) is dropped. Messages wait in our channel meanwhile.
        self.group = group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await self._snapshot()
        if snapshot is not None:
            await self._send_snapshot(snapshot)
        if not self.done:
            self.quiet_since = asyncio.get_running_loop().time()
            self.watcher = asyncio.create_task(self._watch())

    async def disconnect(self, code: int) -> None:
        self.done = True
        self._drop_pending()
        if self.watcher is not None:
            self.watcher.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """The stream is one-way: whatever the client sends is ignored."""

    # --- channel-layer handlers (called one at a time, in arrival order) -------------------

    async def run_delta(self, message: dict[str, Any]) -> None:
        if self.done:
            return
        delta = message.get("delta") or {}
        seq = delta.get("seq")
        if not isinstance(seq, int) or seq <= self.last_seq:
            return
        loop = asyncio.get_running_loop()
        self.quiet_since = loop.time()
        run = delta.get("run") or {}
        if run.get("status") in FINAL_STATUSES:
            self._drop_pending()
            await self._end()
            return
        self.last_seq = seq
        self._merge(seq, delta)
        if self.flusher is None or self.flusher.done():
            wait = self.last_delta_at + DELTA_INTERVAL - loop.time()
            if wait <= 0:
                await self._flush()
            else:
                self.flusher = asyncio.create_task(self._flush_later(wait))

    async def run_items(self, message: dict[str, Any]) -> None:
        """Items of a distributed loop's chunk, from the worker executing it (its store has
        no seq of the run's): they wait in the pending delta and go with the coordinator's
        next one, whose counts moved with them."""
        if self.done:
            return
        self._merge(None, message)

    async def run_ended(self, message: dict[str, Any]) -> None:
        """The run's final row update is stored (including a cancellation): end the stream."""
        if not self.done:
            snapshot = await self._snapshot()
            if snapshot is not None and snapshot["final"]:
                self._drop_pending()
                await self._send_snapshot(snapshot)

    # --- coalescing ----------------------------------------------------------------------
    # The store publishes at most every 100 ms; deltas that still arrive closer together
    # (a layer that delivers in bursts) are merged, so a socket gets <= 1 delta per
    # DELTA_INTERVAL. Rows are whole rows (engine/store.py), so the latest one wins.

    def _merge(self, seq: int | None, delta: dict[str, Any]) -> None:
        """`seq` None: rows that carry no seq of the run's (a chunk's items)."""
        if self.pending is None:
            self.pending = {
                "seq": seq,
                "run": {},
                "blocks": {},
                "loops": {},
                "items": {},
                "items_omitted": 0,
                "steps": {},
            }
        pending = self.pending
        if seq is not None:
            pending["seq"] = seq
        pending["run"].update(delta.get("run") or {})
        pending["blocks"].update(delta.get("blocks") or {})
        pending["loops"].update(delta.get("loops") or {})
        pending["items_omitted"] += int(delta.get("items_omitted") or 0)
        items = pending["items"]
        for row in reversed(delta.get("items") or []):  # oldest first: the newest end last
            key = row.get("key")
            items[key] = {**items.pop(key, {}), **row}
        while len(items) > WIRE_ITEMS:  # keep the newest; the rest are counted, not sent
            items.pop(next(iter(items)))
            pending["items_omitted"] += 1
        for row in delta.get("steps") or []:
            key = (row.get("item_key"), row.get("block_id"))
            pending["steps"][key] = {**pending["steps"].get(key, {}), **row}

    def _drop_pending(self) -> None:
        self.pending = None
        if self.flusher is not None:
            self.flusher.cancel()

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        await self._flush()

    async def _flush(self) -> None:
        if self.pending is not None and self.pending["seq"] is None:
            return  # only a chunk's items so far: they go with the next delta
        pending, self.pending = self.pending, None
        if pending is None or self.done:
            return
        self.last_delta_at = asyncio.get_running_loop().time()
        frame = bounded_frame(
            {
                "type": "delta",
                "seq": pending["seq"],
                "run": pending["run"],
                "blocks": pending["blocks"],
                "loops": pending["loops"],
                "items": list(pending["items"].values())[::-1],  # newest first
                "items_omitted": pending["items_omitted"],
                "steps": list(pending["steps"].values()),
            }
        )
        await self.send_json(frame)

    # --- helpers -------------------------------------------------------------------------

    async def _snapshot(self) -> dict[str, Any] | None:
        """The run from the database; None (and the socket closed) if it was deleted."""
        try:
            return await db_call(run_snapshot, self.run_id)
        except Run.DoesNotExist:
            self.done = True
            await self.close(code=CLOSE_NOT_FOUND)
            return None

    async def _catch_up(self) -> None:
        """A fresh snapshot in place of the deltas this process could not hear; a delta
        it covers, merged meanwhile, is dropped."""
        snapshot = await self._snapshot()
        if snapshot is None or self.done:
            return
        if self.pending is not None and (self.pending["seq"] or 0) <= snapshot["seq"]:
            self._drop_pending()
        await self._send_snapshot(snapshot)

    async def _end(self) -> None:
        snapshot = await self._snapshot()
        if snapshot is not None:
            await self._send_snapshot(snapshot, close=True)

    async def _send_snapshot(self, snapshot: dict[str, Any], *, close: bool = False) -> None:
        self.last_seq = max(self.last_seq, snapshot["seq"])
        ending = snapshot["final"] or close
        if ending:
            self.done = True  # before sending: no delta may follow the final snapshot
            # The last message keeps the deltas' spacing too: with ten deltas in the run's
            # last second it was the eleventh (at most 10 messages a second, always).
            wait = self.last_delta_at + DELTA_INTERVAL - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
        await self.send_json(snapshot)
        if ending:
            await self.close()

    async def _watch(self) -> None:
        """Safety net for a lost final delta or a run cancelled without a publish. It never
        gives up: a failed check or a full channel is retried at the next interval."""
        loop = asyncio.get_running_loop()
        local = process_local(self.channel_layer)
        interval = LOCAL_POLL_SECONDS if local else WATCH_INTERVAL
        while not self.done:
            await asyncio.sleep(interval)
            if self.done or loop.time() - self.quiet_since < interval:
                continue
            self.quiet_since = loop.time()
            try:
                ended, seq = await db_call(_run_position, self.run_id)
                if not ended:
                    if local and seq > self.last_seq:  # run by another process: unheard
                        await self._catch_up()
                    continue
            except Exception:
                log.warning("run %s: could not check the run's status", self.run_id, exc_info=True)
                continue
            # Directly, not through the channel layer: a lost or stuck channel must not keep
            # the stream open. A delta still pending is dropped (the snapshot covers it).
            await self.run_ended({})
