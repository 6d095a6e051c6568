"""A served process ends after its stop even when a thread it cannot join is left waiting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import logging, sys, threading
from klyntos.exit_watchdog import exit_within
logging.basicConfig(level=logging.INFO)
if sys.argv[1] == "stranded":  # a request thread waiting for a loop that stopped
    threading.Thread(target=threading.Event().wait, name="stranded-request").start()
print("stopped", flush=True)
exit_within(0.5)
sys.exit(3)
"""


def run(case: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(  # noqa: S603 -- our own program
        [sys.executable, "-c", PROGRAM, case],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done


def test_a_thread_left_waiting_does_not_keep_the_process_alive() -> None:
    done = run("stranded")
    assert done.stdout == "stopped\n"
    assert done.returncode == 0
    assert "exiting without the 1 thread(s) still waiting after the stop: " in done.stderr
    assert "stranded-request" in done.stderr


def test_a_process_that_exits_by_itself_exits_as_it_would() -> None:
    done = run("clean")
    assert done.returncode == 3  # its own status: the watchdog never fired
    assert "exiting without" not in done.stderr
