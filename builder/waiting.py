"""A webhook or REST run request that waits for the run's answer (`Prefer: wait=<seconds>` or
`?wait=<seconds>`, at most KLYNTOS_MAX_WAIT_SECONDS).

The view starts the run as usual and, when the request asked to wait, leaves a note in the
ASGI scope (`ask_to_wait`); its usual answer (202 or 201 with the run) is held back by
`AnswerWhenDone`, the ASGI layer around Django, which waits on the server's event loop —
no thread — for the run's end (`engine/run_wait.py`) and sends the run's answer instead
(`engine/run_answer.py`); past the deadline the usual answer goes out and the run goes on.
Served without that layer (WSGI), the note has nowhere to go and the usual answer stands.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from engine.core.give_way import PRIORITY
from engine.run_answer import Answer, read_answer
from engine.run_wait import wait_for_end

log = logging.getLogger(__name__)

SCOPE_KEY = "klyntos.wait"
# Seconds as digits with an optional fraction: no exponents, signs, infinities or NaN.
SECONDS = re.compile(r"\d{1,9}(\.\d{1,9})?")
REPLAYED_HEADER = "Idempotent-Replayed"


class WaitRequestError(ValueError):
    """A wait that cannot be honoured as asked (400, nothing started)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _prefer_wait(prefer: str | None) -> str | None:
    """The `wait` preference of a Prefer header (RFC 7240: `respond-async, wait=10`)."""
    for preference in (prefer or "").split(","):
        token = preference.split(";", 1)[0]
        name, sep, value = token.partition("=")
        if name.strip().lower() == "wait":
            return value.strip().strip('"') if sep else ""
    return None


def requested_wait(prefer: str | None, query: str | None, limit: float) -> float | None:
    """The seconds the caller will wait (`?wait=` wins over `Prefer`); None for no wait."""
    raw = query if query is not None else _prefer_wait(prefer)
    if raw is None:
        return None
    text = raw.strip()
    if not SECONDS.fullmatch(text):
        shown = text[:40] + ("…" if len(text) > 40 else "")
        raise WaitRequestError(f"wait must be a number of seconds (like 10 or 2.5), got '{shown}'")
    seconds = float(text)
    if seconds > limit:
        raise WaitRequestError(
            f"wait is at most {limit:g} seconds (KLYNTOS_MAX_WAIT_SECONDS), got {text}"
        )
    return seconds or None


@dataclass
class WaitNote:
    run_id: str | None = None
    deadline: float = 0.0  # time.monotonic()
    replayed: bool = False


def ask_to_wait(request: Any, run_id: Any, seconds: float, *, replayed: bool = False) -> bool:
    """Ask the ASGI layer to answer this request with the run's answer if the run ends within
    `seconds`. False when the request is not served through it."""
    note = getattr(request, "scope", {}).get(SCOPE_KEY)
    if not isinstance(note, WaitNote):
        return False
    note.run_id = str(run_id)
    note.deadline = time.monotonic() + seconds
    note.replayed = replayed
    return True


async def _answer_in_time(note: WaitNote) -> Answer | None:
    assert note.run_id is not None  # noqa: S101 -- only called with a note filled in
    read = sync_to_async(read_answer, thread_sensitive=False)
    remaining = max(0.0, note.deadline - time.monotonic())
    return await wait_for_end(note.run_id, remaining, lambda: read(note.run_id))


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class AnswerWhenDone:
    """ASGI middleware: sends a waiting request the run's answer, or its usual one late."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note = WaitNote()
        held: list[dict[str, Any]] = []

        async def hold_if_waiting(message: dict[str, Any]) -> None:
            if note.run_id is None:
                await send(message)
            else:
                held.append(message)

        await self.app({**scope, SCOPE_KEY: note}, receive, hold_if_waiting)
        if not held:
            return
        with PRIORITY.set_aside():  # waiting is not work: the runs may have the CPU
            answer = await self._wait(note, receive)
        if answer is None:
            for message in held:
                await send(message)
            return
        if answer is _GONE:
            return
        await self._send_answer(send, answer, note)

    async def _wait(self, note: WaitNote, receive: Any) -> Any:
        waiting = asyncio.ensure_future(_answer_in_time(note))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, gone):
                if not task.done():
                    task.cancel()
            await asyncio.gather(waiting, gone, return_exceptions=True)
        if not waiting.cancelled():
            if waiting.exception() is None:
                return waiting.result()
            # The run is started and stored: its usual answer is still true.
            log.warning("waiting for run %s failed", note.run_id, exc_info=waiting.exception())
            return None
        return _GONE  # the caller hung up: nobody to answer, the run goes on

    @staticmethod
    async def _send_answer(send: Any, answer: Answer, note: WaitNote) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        headers += [
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-klyntos-run-id", str(note.run_id).encode()),
        ]
        if note.replayed:
            headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


_GONE = object()
