"""(i) 10,000 leads through the template on PostgreSQL, from the CLI, with the editor's wire
watched: the simulator at a fixed 50 ms per call.

The app runs as `make run` runs it (daphne) but on PostgreSQL and channels-redis, so the
CLI process's deltas reach its sockets. Before the run this process signs in and opens the
workflow socket; when the run is announced it opens the run socket and records every
frame's size and time until the run's final snapshot. The CLI run's RSS is sampled from
outside. Ideal: C workers take N·2L/C (the template's critical path is two calls).
`BENCH_I_N` overrides N (a diagnostic run, not the measurement). Targets (issue 6): `succeeded`, 10,000 rows, one Slack post, peak in flight 10 on each
lookup, efficiency ≥ 0.85, peak RSS ≤ 500 MB; frames < 64 KB and ≤ 10 messages a second.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.cli_runs import enriched_rows, klyntos_env, migrate, run_template
from bench.databases import fresh_databases
from bench.harness import BenchError, make_leads, simulator
from bench.responsive import _login

LATENCY_MS = 50
CONCURRENCY = 10  # the template's max_concurrent
LIST_PRICE = json.dumps({"gpt-4o-mini": {"input": 0.15, "output": 0.6}})  # USD per 1M tokens
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
TARGETS = {
    "efficiency": 0.85,
    "peak_rss_mb": 500.0,
    "max_frame_bytes": 64 * 1024,
    "messages_per_s": 10.0,
}


@dataclass
class Frame:
    at: float
    size: int
    kind: str


@dataclass
class SocketWatch:
    """Frames of the workflow socket, and of the run socket once the run is announced."""

    base_url: str
    cookies: dict[str, str]
    workflow_id: int
    workflow_frames: list[Frame] = field(default_factory=list)
    run_frames: list[Frame] = field(default_factory=list)
    run_id: str | None = None
    errors: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        thread.start()
        return thread

    async def _main(self) -> None:
        ws_base = self.base_url.replace("http://", "ws://", 1)
        headers = {"Origin": self.base_url}
        try:
            async with aiohttp.ClientSession(cookies=self.cookies) as session:
                async with session.ws_connect(
                    f"{ws_base}/ws/workflows/{self.workflow_id}/", headers=headers, max_msg_size=0
                ) as workflow_socket:
                    self.ready.set()
                    async for message in workflow_socket:
                        frame = self._record(message, self.workflow_frames)
                        if frame is not None and frame.get("type") == "run.started":
                            self.run_id = str(frame["run"]["id"])
                            break
                    if self.run_id is None:
                        raise BenchError(
                            "the workflow socket closed before announcing the run (code "
                            f"{workflow_socket.close_code}, {workflow_socket.exception()})"
                        )
                    async with session.ws_connect(
                        f"{ws_base}/ws/runs/{self.run_id}/", headers=headers, max_msg_size=0
                    ) as run_socket:
                        async for message in run_socket:
                            self._record(message, self.run_frames)
        except Exception as exc:  # reported with the result, never hidden
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.ready.set()
            self.done.set()

    @staticmethod
    def _record(message: aiohttp.WSMessage, into: list[Frame]) -> dict[str, Any] | None:
        if message.type != aiohttp.WSMsgType.TEXT:
            return None
        data = message.data
        decoded = json.loads(data)
        into.append(Frame(time.time(), len(data.encode()), str(decoded.get("type"))))
        return decoded if isinstance(decoded, dict) else None


def _busiest_second(frames: list[Frame]) -> int:
    """The most frames in any one-second window."""
    times = sorted(f.at for f in frames)
    best = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def run(*, quick: bool = False) -> dict[str, Any]:
    from tests.e2e.conftest import start_local_app

    n = int(os.environ.get("BENCH_I_N", 0)) or (300 if quick else 10_000)
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    with (
        simulator(latency_ms=LATENCY_MS, no_record=True) as sim,
        fresh_databases("f") as databases,
        tempfile.TemporaryDirectory(prefix="klyntos-bench-f-") as tmp,
    ):
        # The simulator bills nothing; priced at OpenAI's list price, the cost line says
        # what the same tokens would cost there.
        env = klyntos_env(
            databases, sim.base_url, REDIS_URL=redis_url, KLYNTOS_MODEL_PRICES=LIST_PRICE
        )
        migrate(env)
        app = start_local_app(
            Path(tmp) / "data",
            env={**databases, "REDIS_URL": redis_url, "KLYNTOS_SIMULATOR_URL": sim.base_url},
        )
        try:
            with httpx.Client(base_url=app.base_url, timeout=60) as client:
                _login(client, app.password)
                listing = client.get("/api/workflows/").json()
                rows = listing.get("results", listing) if isinstance(listing, dict) else listing
                workflow_id = int(rows[0]["id"])
                cookies = {name: value for name, value in client.cookies.items()}
            watch = SocketWatch(app.base_url, cookies, workflow_id)
            watch.start()
            watch.ready.wait(30)
            sim.control.reset(latency_ms=LATENCY_MS)
            cli = run_template(env, make_leads(n))
            watch.done.wait(60)
            stats = sim.control.stats()
            rows_stored = enriched_rows(env)
            # A socket the server closed: its traceback says why.
            server_log = app.lines[-40:] if watch.errors else []
        finally:
            app.process.terminate()
            app.process.wait(timeout=30)

    latency = LATENCY_MS / 1000
    ideal = n * 2 * latency / CONCURRENCY
    wall = float(cli.summary["wall_seconds"])
    frames = watch.workflow_frames + watch.run_frames
    run_frames = watch.run_frames
    span = (run_frames[-1].at - run_frames[0].at) if len(run_frames) > 1 else 0.0
    peak = stats["peak_in_flight"]
    result: dict[str, Any] = {
        "bench": "template_scale",
        "n": n,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "data": "postgresql",
        "run_status": cli.summary["status"],
        "succeeded": cli.summary["succeeded"],
        "failed": cli.summary["failed"],
        "enriched_rows": rows_stored,
        "slack_posts": stats["requests"]["slack"],
        "peak_in_flight_clearbit": peak["clearbit"],
        "peak_in_flight_linkedin": peak["linkedin"],
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "efficiency": round(ideal / wall, 4),
        # The brief's cost line, measured on this run (engine/run_costs.py via the CLI).
        "cost_line": cli.summary.get("summary"),
        "peak_rss_mb": round(cli.peak_rss / 2**20, 1),
        "run_socket_messages": len(run_frames),
        "messages_per_s": round(len(run_frames) / span, 2) if span else 0.0,
        "busiest_second_messages": _busiest_second(run_frames),
        "max_frame_bytes": max((f.size for f in frames), default=0),
        "final_frame_bytes": run_frames[-1].size if run_frames else 0,
        "socket_errors": watch.errors,
        "server_log": server_log,
        "targets": TARGETS,
    }
    result["pass"] = bool(
        result["run_status"] == "succeeded"
        and rows_stored == n
        and result["slack_posts"] == 1
        and peak["clearbit"] == CONCURRENCY
        and peak["linkedin"] == CONCURRENCY
        and result["efficiency"] >= TARGETS["efficiency"]
        and result["peak_rss_mb"] <= TARGETS["peak_rss_mb"]
        and result["max_frame_bytes"] < TARGETS["max_frame_bytes"]
        and result["busiest_second_messages"] <= TARGETS["messages_per_s"]
        and run_frames
        and not watch.errors
    )
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"template_scale: n={result['n']} CLI run {result['run_status']}, "
        f"{result['enriched_rows']} rows, {result['slack_posts']} Slack post(s), peak in flight "
        f"{result['peak_in_flight_clearbit']}/{result['peak_in_flight_linkedin']}; "
        f"{result['wall_s']:.1f}s vs ideal {result['ideal_s']:.1f}s → efficiency "
        f"{result['efficiency']:.3f} (≥{TARGETS['efficiency']}), peak RSS "
        f"{result['peak_rss_mb']:.0f} MB (≤500); socket: largest frame "
        f"{result['max_frame_bytes']} B, {result['busiest_second_messages']} msgs in the "
        f"busiest second; {_cost_line(result['cost_line'])} "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )


def _cost_line(line: dict[str, Any] | None) -> str:
    """'sequential 2000s, wall 210s: 9.5× faster, 1,234,567 tokens, $0.2345'."""
    if not line:
        return "no cost line"
    dollars = "no price" if line["cost_usd"] is None else f"${line['cost_usd']:.4f}"
    speedup = "-" if line["speedup"] is None else f"{line['speedup']:.1f}×"
    return (
        f"sequential {line['sequential_seconds']:.0f}s, wall {line['wall_seconds'] or 0:.0f}s: "
        f"{speedup} faster, {line['tokens']['total']:,} tokens, {dollars}"
    )
