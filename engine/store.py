"""Persists engine events as Run / ItemRun / StepRun rows, in batches, then publishes a
coalesced delta to the channel-layer group `run.<id>` once the batch is committed.

The engine calls `RunStore.sink` for every event (cheap: it appends). A flusher task writes
whatever accumulated every `interval` seconds on one dedicated thread, so a burst of 1,000
item completions costs a handful of transactions and a handful of websocket messages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from engine.core.data import json_safe
from engine.core.events import Event
from engine.json_text import json_expression
from engine.models import FINAL_STATUSES, ItemRun, Run, StepRun
from engine.publish import group_send

log = logging.getLogger(__name__)

ITEM_FIELDS = [
    "status",
    "data",
    "error",
    "failed_block",
    "started_at",
    "finished_at",
    "duration",
    "loop_block",
    "parent_key",
    "index",
]
STEP_FIELDS = [
    "name",
    "status",
    "output",
    "error",
    "attempts",
    "usage",
    "started_at",
    "finished_at",
    "duration",
]


RUN_ENDS = {"run.finished", "run.failed"}
# How often a run with nothing to write checks whether it was cancelled from elsewhere.
CANCEL_CHECK_SECONDS = 1.0
ITEM_ENDS = {"item.finished": "succeeded", "item.failed": "failed", "item.cancelled": "cancelled"}
STEP_ENDS = {"step.finished": "succeeded", "step.failed": "failed", "step.cancelled": "cancelled"}


def group_name(run_id: Any) -> str:
    return f"run.{run_id}"


def _when(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


class RunStore:
    """Folds a run's events into rows and writes them in batches.

    The run's final status is held back until `close()`, which writes it together with the
    run's outputs in one transaction, so nobody ever sees a finished run without outputs.
    A batch that cannot be stored is stored with its JSON values as text; one that still
    cannot is logged and skipped: the run still ends properly.
    """

    def __init__(
        self,
        run_id: Any,
        *,
        interval: float = 0.1,
        publish: bool = True,
        on_cancelled: Callable[[], object] | None = None,
    ) -> None:
        self.run_id = run_id
        self.interval = interval
        self.publish = publish
        self.on_cancelled = on_cancelled
        self._pending: list[Event] = []
        self._items: dict[str, dict[str, Any]] = {}
        self._steps: dict[tuple[str, str], dict[str, Any]] = {}
        self._run: dict[str, Any] = {}
        self._ending: dict[str, Any] = {}
        self._progress: dict[str, dict[str, int]] = {}
        self._thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"run-store-{str(run_id)[:8]}"
        )
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    # --- engine side ---------------------------------------------------------------------

    def sink(self, event: Event) -> None:
        self._pending.append(event)
        if event.type in RUN_ENDS:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever())

    async def close(self, final: dict[str, Any] | None = None) -> None:
        """Flush what is left, then store the run's end (held status + `final` values)."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._flush()
        values = {**self._ending, **(final or {})}
        values.setdefault("finished_at", timezone.now())
        values["running"] = 0
        # The end is a change of its own: it gets the next seq, so listeners never drop it.
        values["last_seq"] = self._run.get("last_seq", 0) + 1
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._write_end, values)
            if self.publish:
                self._run.update(values)
                ending = {
                    "run": {k: v for k, v in self._run.items() if k != "outputs"},
                    "items": [],
                    "steps": [],
                }
                await self._send(ending)
        finally:
            await loop.run_in_executor(self._thread, connections.close_all)
            self._thread.shutdown(wait=True)

    async def _flush_forever(self) -> None:
        quiet = 0.0
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._pending:
                quiet = 0.0
                await self._flush()
            else:
                quiet += self.interval
                if quiet >= CANCEL_CHECK_SECONDS:  # nothing to write: still look for a cancel
                    quiet = 0.0
                    await self._check_live()

    async def _check_live(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            live = await loop.run_in_executor(self._thread, self._is_live)
        except Exception:
            log.warning("could not check run %s for a cancel", self.run_id, exc_info=True)
            return
        if not live:
            self._cancelled_elsewhere()

    def _cancelled_elsewhere(self) -> None:
        """The row was ended by someone else (a cancel from another process): stop, once."""
        callback, self.on_cancelled = self.on_cancelled, None
        if callback is not None:
            callback()

    def _is_live(self) -> bool:
        close_old_connections()
        return _live(self.run_id).exists()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        delta = self._apply(batch)
        loop = asyncio.get_running_loop()
        try:
            live = await loop.run_in_executor(self._thread, self._write, delta)
        except Exception:  # never let storage kill the run or leave it unfinished
            log.exception(
                "could not store events %s..%s of run %s", batch[0].seq, batch[-1].seq, self.run_id
            )
            return
        if not live:
            self._cancelled_elsewhere()
        if self.publish:
            await self._send(delta)

    # --- folding events into row state ---------------------------------------------------

    def _apply(self, batch: list[Event]) -> dict[str, Any]:
        items: dict[str, dict[str, Any]] = {}
        steps: dict[tuple[str, str], dict[str, Any]] = {}
        for event in batch:
            data = event.data
            kind = event.type
            if kind == "run.started":
                self._run.update(status="running", started_at=_when(event.at))
            elif kind in RUN_ENDS:
                self._ending = {
                    "status": data["status"],
                    "error": data.get("error") or "",
                    "finished_at": _when(event.at),
                }
            elif kind == "progress":
                if not data.get("item"):  # top-level loops drive the run's progress counts
                    self._progress[data["loop"]] = {
                        k: data[k] for k in ("total", "succeeded", "failed", "running")
                    }
            elif kind.startswith("item."):
                row = self._items.setdefault(data["item"], {"key": data["item"]})
                if kind == "item.started":
                    row.update(
                        status="running",
                        loop_block=data["loop"],
                        parent_key=data.get("parent") or "",
                        index=data["index"],
                        data=data.get("data"),
                        started_at=_when(event.at),
                    )
                else:
                    if "started_at" not in row:  # never started (skipped by a circuit breaker)
                        row.update(
                            loop_block=data.get("loop", ""),
                            parent_key=data.get("parent") or "",
                            index=data.get("index", 0),
                            data=data.get("data"),
                        )
                    row.update(
                        status=ITEM_ENDS.get(kind, "failed"),
                        error=data.get("error") or "",
                        failed_block=data.get("block") or "",
                        finished_at=_when(event.at),
                        duration=data.get("duration"),
                    )
                items[row["key"]] = row
            elif kind.startswith("step."):
                key = (data.get("item") or "", data["block"])
                row = self._steps.setdefault(
                    key, {"item_key": key[0], "block_id": key[1], "name": data["name"]}
                )
                if kind == "step.started":
                    row.update(status="running", started_at=_when(event.at))
                elif kind == "step.retrying":
                    row.update(
                        status="retrying", attempts=data["attempt"], error=data.get("error") or ""
                    )
                else:
                    row.update(
                        status=STEP_ENDS.get(kind, "failed"),
                        output=data.get("output"),
                        error=data.get("error") or "",
                        attempts=data.get("attempts") or 1,
                        usage=data.get("usage") or [],
                        finished_at=_when(event.at),
                        duration=data.get("duration"),
                    )
                steps[key] = row
        if self._progress:
            totals = {
                k: sum(p[k] for p in self._progress.values())
                for k in ("total", "succeeded", "failed", "running")
            }
            self._run.update(totals)
        self._run["last_seq"] = batch[-1].seq
        return {
            "run": dict(self._run),
            "items": list(items.values()),
            "steps": list(steps.values()),
        }

    # --- database (store thread) ---------------------------------------------------------

    def _write(self, delta: dict[str, Any]) -> bool:
        """Store one batch; False when the run row was already ended by someone else."""
        close_old_connections()
        try:
            return self._write_rows(delta)
        except Exception:
            # A value the JSON columns cannot take: PostgreSQL's jsonb refuses NUL characters
            # and NaN, lone surrogates cannot be encoded, and a type nobody made JSON-safe
            # cannot be serialised at all. Store the batch with those values as text rather
            # than lose it.
            log.warning("storing run %s's batch with its values as text", self.run_id)
            return self._write_rows(_storable(delta))

    def _write_rows(self, delta: dict[str, Any]) -> bool:
        with transaction.atomic():
            if delta["items"]:
                ItemRun.objects.bulk_create(
                    [ItemRun(run_id=self.run_id, **_defaults_item(row)) for row in delta["items"]],
                    update_conflicts=True,
                    unique_fields=["run", "key"],
                    update_fields=ITEM_FIELDS,
                )
            if delta["steps"]:
                StepRun.objects.bulk_create(
                    [StepRun(run_id=self.run_id, **_defaults_step(row)) for row in delta["steps"]],
                    update_conflicts=True,
                    unique_fields=["run", "item_key", "block_id"],
                    update_fields=STEP_FIELDS,
                )
            updated = _live(self.run_id).update(**delta["run"])
        return bool(updated)

    def _write_end(self, values: dict[str, Any]) -> None:
        close_old_connections()
        try:
            # Tens of MB after a big loop: encoded in slices, not one GIL-holding call.
            encoded = dict(values)
            if "outputs" in encoded:
                encoded["outputs"] = json_expression(encoded["outputs"])
            self._write_end_rows(encoded)
            return
        except Exception:
            log.warning("storing the end of run %s with its outputs as text", self.run_id)
        try:
            self._write_end_rows(_storable(values))
        except Exception:
            # Even as text the outputs cannot be stored: the run still ends, failed, saying so.
            log.exception("could not store the outputs of run %s", self.run_id)
            ending = {k: v for k, v in values.items() if k != "outputs"}
            ending.update(
                status="failed", error=f"{values.get('error') or ''} {UNSTORABLE}".strip()
            )
            self._write_end_rows(ending)

    def _write_end_rows(self, values: dict[str, Any]) -> None:
        with transaction.atomic():
            if not _live(self.run_id).update(**values):
                # Ended elsewhere (cancelled from another process): keep its status.
                Run.objects.filter(pk=self.run_id).update(
                    running=0, **({"outputs": values["outputs"]} if "outputs" in values else {})
                )
                Run.objects.filter(pk=self.run_id, finished_at__isnull=True).update(
                    finished_at=values["finished_at"]
                )
            # Work that never reported its end (cancelled with the run) is not running.
            ItemRun.objects.filter(run_id=self.run_id, status="running").update(status="cancelled")
            StepRun.objects.filter(run_id=self.run_id, status__in=["running", "retrying"]).update(
                status="cancelled"
            )

    async def _send(self, delta: dict[str, Any]) -> None:
        await group_send(group_name(self.run_id), {"type": "run.delta", "delta": _wire(delta)})


def _live(run_id: Any) -> QuerySet[Run]:
    return Run.objects.filter(pk=run_id).exclude(status__in=FINAL_STATUSES)


UNSTORABLE = "(the run's outputs could not be stored)"
# Row values that are JSON documents; the rest are model fields (datetimes, numbers, text).
JSON_FIELDS = frozenset({"data", "output", "usage", "outputs"})


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    """A delta (or the run's end values) whose JSON documents any database accepts."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in JSON_FIELDS:
            out[key] = _clean_text(json_safe(value))
        elif isinstance(value, list) and key in {"items", "steps"}:
            out[key] = [_storable(r) for r in value]
        elif isinstance(value, dict) and key == "run":
            out[key] = _storable(value)
        else:
            out[key] = _clean_text(value) if isinstance(value, str) else value
    return out


def _clean_text(value: Any) -> Any:
    """NUL becomes U+FFFD (jsonb refuses it), lone surrogates too (UTF-8 cannot hold them)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean_text(k): _clean_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_text(v) for v in value]
    return value


async def publish_run_ended(run_id: Any) -> None:
    """Tell the run's websocket listeners (engine/consumers.py) that the run's last row update
    is stored, so that they send the final snapshot and close. A run that ends without a
    `run.finished` event (cancelled, or crashed outside the engine) publishes no final delta."""
    await group_send(group_name(run_id), {"type": "run.ended"})


def _defaults_item(row: dict[str, Any]) -> dict[str, Any]:
    base = {
        "status": "running",
        "data": None,
        "error": "",
        "failed_block": "",
        "started_at": None,
        "finished_at": None,
        "duration": None,
        "loop_block": "",
        "parent_key": "",
        "index": 0,
    }
    return {**base, **row}


def _defaults_step(row: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "running",
        "output": None,
        "error": "",
        "attempts": 0,
        "usage": [],
        "started_at": None,
        "finished_at": None,
        "duration": None,
    }
    return {**base, **row}


def _wire(delta: dict[str, Any]) -> dict[str, Any]:
    """A delta as JSON-ready data for the websocket (dates as ISO strings, no outputs)."""

    def clean(row: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v.isoformat() if isinstance(v, dt.datetime) else v
            for k, v in row.items()
            if k != "output"
        }

    return {
        "seq": delta["run"].get("last_seq"),
        "run": clean(delta["run"]),
        "items": [clean(r) for r in delta["items"]],
        "steps": [clean(r) for r in delta["steps"]],
    }
