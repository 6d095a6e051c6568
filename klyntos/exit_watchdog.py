"""The end of a served process, bounded: a request the stop caught cannot keep it alive.

WhiteNoise's middleware and ours are sync-only, so Django runs them in a thread that hands
the rest of the request back to the server's event loop and waits for it. A request caught
there by SIGTERM waits for a loop that has stopped: its thread never ends, and the
interpreter joins every such thread as it exits, so `make run` hung after its graceful stop
(seen once in the Chromium suite's stop check, 45 s and counting). Once the server has
stopped and the runs are drained, nothing such a thread could still do is wanted.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

log = logging.getLogger(__name__)

# How long the interpreter's own exit may take before the process ends without it.
EXIT_SECONDS = 5.0


def exit_within(seconds: float = EXIT_SECONDS) -> None:
    """Call last: if the process has not exited `seconds` from now, it says which threads
    held it and ends (status 0: the stop itself went as planned)."""

    def watch() -> None:
        time.sleep(seconds)
        waiting = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
        log.warning(
            "exiting without the %d thread(s) still waiting after the stop: %s",
            len(waiting),
            ", ".join(waiting),
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=watch, name="exit-watchdog", daemon=True).start()
