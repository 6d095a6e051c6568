"""A look-out on a thread of its own: does one look every `poll` seconds until stopped (the
scheduler's look for due schedules, the resumer's look for interrupted runs)."""

from __future__ import annotations

import logging
import threading

from django.db import connections

log = logging.getLogger(__name__)


class Poller:
    name = "klyntos-poller"
    what = "look"  # for the log line when a look fails

    def __init__(self, poll_seconds: float) -> None:
        self.poll = poll_seconds
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def look(self) -> None:
        raise NotImplementedError

    def start(self) -> Poller:
        self.thread = threading.Thread(target=self.serve, name=self.name, daemon=True)
        self.thread.start()
        return self

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                self.look()
            except Exception:  # a database hiccup must not end the look-out
                log.exception("the %s failed", self.what)
            finally:
                connections.close_all()
            self.stopping.wait(self.poll)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)
