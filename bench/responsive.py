"""(e) Responsiveness: request latency while a 100,000-item run executes in the same process.

The app starts the way `make run` starts it (`manage.py run_local`: daphne, SQLite, the
in-memory channel layer, the in-process executor) in a subprocess. A loop of N items, each
one GET to a zero-latency local server (the simulator's Clearbit route, in its own
process), runs with `max_concurrent` 1000, while this process asks `GET /api/workflows/`
every ~100 ms and records how long each answer took. The targets are issue 12's: p95
≤ 200 ms and max ≤ 1 s for requests made while the run executes (its end included).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.harness import BENCH_HOST, BenchError, one_get_loop_graph, simulator

CONCURRENCY = 1000
SAMPLE_EVERY = 0.1  # seconds between two latency probes
STATUS_EVERY = 1.0  # seconds between two looks at the run's status
TARGETS = {"p95_ms": 200.0, "max_ms": 1000.0}
RUN_TIMEOUT = 600.0
FINAL = {"succeeded", "failed", "cancelled"}


def responsive_graph() -> dict[str, Any]:
    """webhook → loop(parallel, 1000) { one GET }, as the editor would save it."""
    return one_get_loop_graph(
        CONCURRENCY,
        f"https://{BENCH_HOST}/v2/companies/find?domain=d<item>.example",
        "Bearer bench-responsive",
    )


def _login(client: httpx.Client, password: str) -> str:
    """Signs in like a browser; returns the CSRF token the API's unsafe methods need."""
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if token is None:
        raise BenchError("no CSRF token on the login page")
    client.post(
        "/login/",
        data={"username": "admin", "password": password, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{client.base_url}login/"},
    )
    csrf = client.cookies.get("csrftoken")
    if not csrf or "sessionid" not in client.cookies:
        raise BenchError("could not sign in to the local app")
    return csrf


class Prober(threading.Thread):
    """`GET /api/workflows/` every SAMPLE_EVERY seconds; records each answer's latency."""

    def __init__(self, base_url: str, cookies: httpx.Cookies, server: psutil.Process) -> None:
        super().__init__(name="latency-prober", daemon=True)
        self.client = httpx.Client(base_url=base_url, cookies=cookies, timeout=60)
        self.server = server
        self.peak_rss = server.memory_info().rss
        self.samples: list[float] = []
        self.at: list[float] = []  # when each sample started (time.time())
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.client:
            while not self.stop.is_set():
                started = time.perf_counter()
                self.at.append(time.time())
                try:
                    answer = self.client.get("/api/workflows/")
                    if answer.status_code != 200:
                        self.errors.append(f"status {answer.status_code}")
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                elapsed = time.perf_counter() - started
                self.samples.append(elapsed)
                self.peak_rss = max(self.peak_rss, self.server.memory_info().rss)
                self.stop.wait(max(0.0, SAMPLE_EVERY - elapsed))


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _wait_for_end(client: httpx.Client, workflow_id: int, run_id: str) -> dict[str, Any]:
    """The run's summary once final (the runs list leaves the big outputs out)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    next_report = time.monotonic() + 10
    while time.monotonic() < deadline:
        listing = client.get(f"/api/workflows/{workflow_id}/runs/").json()
        rows = listing.get("results", listing) if isinstance(listing, dict) else listing
        row = next((r for r in rows if str(r["id"]) == run_id), None)
        if row is not None and row["status"] in FINAL:
            return dict(row)
        if row is not None and time.monotonic() >= next_report:  # a slow run shows progress
            print(f"responsive: {row['status']} {row.get('progress')}", file=sys.stderr)
            next_report = time.monotonic() + 10
        time.sleep(STATUS_EVERY)
    raise BenchError(f"run {run_id} did not finish within {RUN_TIMEOUT:.0f} s")


def run(*, quick: bool = False, n: int | None = None) -> dict[str, Any]:
    from tests.e2e.conftest import start_local_app

    n = n or (5_000 if quick else 100_000)
    with simulator(latency_ms=0, no_record=True) as target, tempfile.TemporaryDirectory() as tmp:
        app = start_local_app(
            Path(tmp) / "data",
            # The embedded defaults: nothing reads the loop's `results`, so the loop keeps
            # none of its items' outputs and its output stays far under the 16 MB limit.
            env={"KLYNTOS_HOST_OVERRIDES": f"{BENCH_HOST}={target.base_url}"},
        )
        try:
            server = psutil.Process(app.process.pid)
            with httpx.Client(base_url=app.base_url, timeout=120) as client:
                csrf = _login(client, app.password)
                headers = {"X-CSRFToken": csrf}
                created = client.post(
                    "/api/workflows/",
                    json={"name": "responsiveness bench", "graph": responsive_graph()},
                    headers=headers,
                )
                if created.status_code != 201:
                    raise BenchError(f"workflow not created: {created.status_code} {created.text}")
                workflow_id = created.json()["id"]
                idle: list[float] = []
                for _ in range(10):  # the same request with nothing running, for comparison
                    started = time.perf_counter()
                    client.get("/api/workflows/")
                    idle.append(time.perf_counter() - started)
                rss_before = server.memory_info().rss
                prober = Prober(app.base_url, client.cookies, server)
                started = time.perf_counter()
                answer = client.post(
                    f"/api/workflows/{workflow_id}/runs/",
                    json={"input": {"items": list(range(n))}, "max_concurrent": CONCURRENCY},
                    headers=headers,
                )
                if answer.status_code != 201:
                    raise BenchError(f"run not started: {answer.status_code} {answer.text[:500]}")
                run_id = str(answer.json()["id"])
                prober.start()
                try:
                    summary = _wait_for_end(client, workflow_id, run_id)
                finally:
                    wall = time.perf_counter() - started
                    prober.stop.set()
                    prober.join(timeout=120)
        finally:
            app.process.terminate()
            try:
                app.process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a stuck server must not hide the real error
                for child in psutil.Process(app.process.pid).children(recursive=True):
                    child.kill()  # its sandbox simulator
                app.process.kill()
                app.process.wait(timeout=30)

    samples = prober.samples
    if not samples:
        raise BenchError("no latency sample was taken during the run")
    progress = summary.get("progress") or {}
    duration = summary.get("duration") or wall
    result = {
        "bench": "responsive",
        "n": n,
        "concurrency": CONCURRENCY,
        "run_status": summary["status"],
        "succeeded": progress.get("succeeded"),
        "failed": progress.get("failed"),
        "run_s": round(float(duration), 2),
        "wall_s": round(wall, 2),
        "items_per_s": round(n / float(duration), 1) if duration else 0.0,
        "samples": len(samples),
        "sample_errors": prober.errors[:5],
        "idle_p50_ms": round(statistics.median(idle) * 1000, 1),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(_percentile(samples, 95) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        # The slowest answers and when they came (seconds after the run started), to tell
        # a stall at the run's end from one in its middle.
        "slowest": [
            [round(at - prober.at[0], 1), round(ms * 1000, 1)]
            for ms, at in sorted(zip(samples, prober.at, strict=True), reverse=True)[:5]
        ],
        "server_rss_growth_mb": round((prober.peak_rss - rss_before) / 2**20, 1),
        "targets": TARGETS,
    }
    result["pass_p95"] = result["p95_ms"] <= TARGETS["p95_ms"]
    result["pass_max"] = result["max_ms"] <= TARGETS["max_ms"]
    result["pass"] = bool(
        result["pass_p95"]
        and result["pass_max"]
        and not prober.errors
        and summary["status"] == "succeeded"
    )
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"responsive: n={result['n']} run {result['run_status']} in {result['run_s']} s "
        f"({result['items_per_s']:.0f} items/s); GET /api/workflows/ over {result['samples']} "
        f"samples p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms "
        f"(≤{TARGETS['p95_ms']:.0f}), max {result['max_ms']} ms (≤{TARGETS['max_ms']:.0f}) "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )
