"""A look-out on a thread of its own: does one look every `poll` seconds until stopped (the
scheduler's look for due schedules, the resumer's look for interrupted runs), or sooner when
woken (`wake`); and the name this process goes by in the cluster's tables."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from django.db import connections

log = logging.getLogger(__name__)

# Drawn once per start: a process restarted with the same host name and PID (a container's
# PID 1) is not taken for its predecessor, whose rows it would otherwise inherit.
_START = secrets.token_hex(6)


def process_name() -> str:
    """This process in the cluster's tables (slots, grants, limits, breakers): host, PID and
    a token drawn at start."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{_START}"


def drop_broken_connections() -> None:
    """`close_old_connections` without its age rule, for a thread that keeps its connection
    (the run store's, the breakers' look-out): one that failed and is no longer usable (the
    database restarted), or left inside a transaction, is closed for a new one."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()


class Poller:
    name = "klyntos-poller"
    what = "look"  # for the log line when a look fails
    # Keep the thread's database connection between looks (closed only when broken) rather
    # than a new one per look: for look-outs that look often.
    keep_connection = False

    def __init__(self, poll_seconds: float) -> None:
        self.poll = poll_seconds
        self.stopping = threading.Event()
        self.woken = threading.Event()
        self.thread: threading.Thread | None = None

    def look(self) -> None:
        raise NotImplementedError

    def pause(self) -> float:
        """The least time before the next look, however soon it is woken (after a look)."""
        return 0.0

    def wake(self) -> None:
        """Look now (after `pause`) rather than at the end of `poll`."""
        self.woken.set()

    def start(self) -> Poller:
        self.thread = threading.Thread(target=self.serve, name=self.name, daemon=True)
        self.thread.start()
        return self

    def serve(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    self.look()
                except Exception:  # a database hiccup must not end the look-out
                    log.exception("the %s failed", self.what)
                finally:
                    if self.keep_connection:
                        drop_broken_connections()
                    else:
                        connections.close_all()
                if self.stopping.wait(self.pause()):
                    break
                self.woken.wait(self.poll)
                self.woken.clear()
        finally:
            connections.close_all()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.woken.set()
        if self.thread is not None:
            self.thread.join(timeout)
