"""`python -m simulator` as a real subprocess: start, serve, count, stop on SIGTERM."""

from __future__ import annotations

import httpx
import pytest

from simulator import answers
from simulator.testing import run_in_process

AUTH = {"Authorization": "Bearer test-key"}


def test_run_in_process_no_record_keeps_counts() -> None:
    sim = run_in_process(port=0, no_record=True, latency_ms=1)
    try:
        assert sim.base_url.startswith("http://127.0.0.1:")
        assert sim.control.health()["ok"] is True
        with httpx.Client(base_url=sim.base_url, headers=AUTH) as http:
            for i in range(5):
                response = http.get("/v2/companies/find", params={"domain": f"p{i}.io"})
                assert response.json() == answers.company(f"p{i}.io")
        stats = sim.control.stats()
        assert stats["requests"]["clearbit"] == 5
        assert stats["peak_in_flight"]["clearbit"] == 1
        assert stats["received"] == []
        assert sim.control.config()["record"] is False
    finally:
        sim.stop()
    assert sim.process is not None
    assert sim.process.returncode == 0  # SIGTERM is a clean exit
    with pytest.raises(httpx.TransportError):
        httpx.get(sim.base_url + "/_sim/health", timeout=1)


def test_run_in_process_cli_jitter_and_seed() -> None:
    with run_in_process(jitter_ms=(3, 6), seed=11) as sim:
        config = sim.control.config()
        assert config["jitter_ms"] == {"default": [3, 6]}
        assert config["seed"] == 11
        with httpx.Client(base_url=sim.base_url, headers=AUTH) as http:
            http.get("/v2/people", params={"email": "a@b.io"})
        (seen,) = sim.control.stats()["received"]
        assert 3 <= seen["latency_ms"] <= 6


def test_run_in_process_reports_startup_failure() -> None:
    with pytest.raises(RuntimeError, match="before listening"):
        run_in_process(jitter_ms="9,1")


def test_a_simulator_started_with_exit_with_stops_when_its_launcher_is_killed() -> None:
    """`make run` starts the sandbox simulator; a kill -9 of `make run` left it serving its
    port for ever (the next start reused it, with another control token)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    # The launcher: a process that starts the simulator with --exit-with itself, prints the
    # simulator's pid and then waits to be killed.
    launcher = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-m', 'simulator', '--port', '0',"
            " '--exit-with', str(os.getpid())], stdout=subprocess.PIPE, text=True)\n"
            "child.stdout.readline()\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        simulator_pid = int(launcher.stdout.readline())
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not _running(simulator_pid):
                break
            time.sleep(0.1)
        else:
            os.kill(simulator_pid, signal.SIGKILL)
            raise AssertionError("the simulator outlived its killed launcher by 10 s")
    finally:
        if launcher.poll() is None:
            launcher.kill()


def _running(pid: int) -> bool:
    """Whether `pid` still runs: an exited process waiting to be reaped (a zombie, when no
    reaper is there to take it) has stopped serving."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
