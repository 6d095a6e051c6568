"""Typed engine events with a per-run increasing `seq`; the engine's only output besides
its result. Payloads are redacted by value before anyone sees them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.core.redaction import Redactor

EventType = Literal[
    "run.started",
    "run.finished",
    "run.failed",
    "item.started",
    "item.finished",
    "item.failed",
    "step.started",
    "step.retrying",
    "step.waiting",
    "step.waited",
    "step.finished",
    "step.failed",
    "step.cancelled",
    "item.cancelled",
    "items.not_started",
    "progress",
    "loop.concurrency",
    "loop.batch",
    "loop.state",
    "run.budget",
    "provider.limit",
    "provider.breaker",
]


@dataclass(slots=True)
class Event:
    """Never changed once made (not frozen only because a frozen dataclass costs four
    times as much to make, and a run makes six per item)."""

    seq: int
    type: EventType
    at: float
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "at": self.at, **self.data}


Sink = Callable[[Event], None]


# The only fields that carry data from outside (item data, outputs, errors, usage, and a
# provider's host, which a URL made of a secret decides). The rest are block ids and names
# (validated identifiers), item keys built from them, counts and statuses: no secret value
# can be in them, so they are not scanned.
PAYLOAD_FIELDS = frozenset(
    {"data", "output", "error", "usage", "saved_usage", "provider", "message"}
)


class EventBus:
    """Numbers, redacts and hands events to a sink; the sink must be quick and never block."""

    def __init__(self, sink: Sink, redactor: Redactor | None = None, start_seq: int = 0) -> None:
        self._sink = sink
        self._redactor = redactor or Redactor()
        self._seq = start_seq

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    @property
    def seq(self) -> int:
        return self._seq

    def emit(self, type_: EventType, **data: Any) -> Event:
        self._seq += 1
        if self._redactor:
            redacted = False
            for key in PAYLOAD_FIELDS.intersection(data):
                before = data[key]
                data[key] = self._redactor.value(before)
                if key == "output" and data[key] is not before:
                    redacted = True
            if redacted:  # a masked output is not what the block made: never reused (memo.py)
                data["redacted"] = True
        event = Event(self._seq, type_, time.time(), data)
        self._sink(event)
        return event
