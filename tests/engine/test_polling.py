"""The look-out's pieces (engine/polling.py): the name this process goes by in the cluster's
tables."""

from __future__ import annotations

import asyncio
import os
import socket

from engine.breaker_sharing import BreakerSharing
from engine.core.providers import ProviderRegistry
from engine.polling import process_name
from engine.slots import ClusterSlots


async def test_a_process_is_named_by_host_pid_and_a_token_drawn_at_its_start() -> None:
    """Finding 6: a process restarted with its predecessor's host name and PID (a container's
    PID 1) is not taken for it: the name carries a token drawn at start, and the grants,
    limits and slots of one process go by the same name."""
    name = process_name()
    host, pid, token = name.rsplit(":", 2)
    assert (host, pid) == (socket.gethostname()[:80], str(os.getpid()))
    assert len(token) == 12 and name == process_name()
    sharing = BreakerSharing(asyncio.get_running_loop(), ProviderRegistry(), 1.0)
    assert sharing.process == name
    one, two = ClusterSlots("", poll=1.0), ClusterSlots("", poll=1.0)
    assert one.process.startswith(name + ":") and two.process.startswith(name + ":")
    assert one.process != two.process  # each loop's holder its own
