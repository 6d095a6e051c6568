"""(f) Multi-API aggregation: five calls in parallel answered in one waiting webhook call.

The app starts the way `make run` starts it (`manage.py run_local`: daphne, SQLite, the
in-memory channel layer, the in-process executor, sandbox mode with its simulator), and its
simulator answers the five public data sources at 300 ms each. The gallery's
`multi-api-aggregation` template is created through the API and called as a client would:
`POST /hooks/<token>` with `Prefer: wait=10`, timed from the request to the last byte of the
combined answer. The same five calls one by one are the same workflow with its HTTP blocks
chained, called the same way. Targets (issue 11): parallel answers 200 with the combined
body in under 600 ms; the calls one by one take at least 1.5 s.
"""

from __future__ import annotations

import copy
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import BenchError
from bench.responsive import _login
from simulator import answers
from simulator.control import SimulatorControl

REPO = Path(__file__).resolve().parent.parent
SLUG = "multi-api-aggregation"
SAMPLE = json.loads((REPO / "builder" / "gallery" / f"{SLUG}.sample.json").read_text())
LATENCY_MS = 300
SOURCES = ("weather", "news", "stocks", "rates", "holidays")
TARGETS = {"parallel_max_s": 0.6, "sequential_min_s": 1.5}


def expected_body(sample: dict[str, str]) -> dict[str, Any]:
    """The combined answer, recomputed from the simulator's pure answers."""
    got = {name: answers.source(name, sample[answers.SOURCE_PARAMS[name]]) for name in SOURCES}
    return {
        "city": got["weather"]["city"],
        "weather": {
            "temperature_c": got["weather"]["temperature_c"],
            "conditions": got["weather"]["conditions"],
        },
        "headlines": got["news"]["headlines"],
        "stock": {
            "symbol": got["stocks"]["symbol"],
            "price": got["stocks"]["price"],
            "change_pct": got["stocks"]["change_pct"],
        },
        "rates": got["rates"]["rates"],
        "next_holiday": got["holidays"]["next_holiday"],
    }


def chained(graph: dict[str, Any]) -> dict[str, Any]:
    """The template with its five calls one after another (same blocks, same references)."""
    graph = copy.deepcopy(graph)
    order = ("webhook", *SOURCES, "combine")
    graph["edges"] = [{"source": a, "target": b} for a, b in zip(order, order[1:], strict=False)]
    graph["edges"].append({"source": "combine", "target": "response"})
    return graph


def _timed_calls(client: httpx.Client, url: str, repeats: int) -> tuple[list[float], Any]:
    times: list[float] = []
    body: Any = None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = client.post(url, json=SAMPLE, headers={"Prefer": "wait=10"})
        times.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise BenchError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
        body = answer.json()
    return times, body


def run(*, quick: bool = False) -> dict[str, Any]:
    from tests.e2e.conftest import start_local_app

    repeats = 3 if quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        app = start_local_app(Path(tmp) / "data")
        try:
            control = SimulatorControl(app.simulator_url, token=app.simulator_token)
            control.configure(latency_ms={"sources": LATENCY_MS}, jitter_ms=None)
            with httpx.Client(base_url=app.base_url, timeout=60) as client:
                csrf = _login(client, app.password)
                headers = {"X-CSRFToken": csrf}
                made = client.post(f"/api/templates/{SLUG}/instantiate/", json={}, headers=headers)
                if made.status_code != 201:
                    raise BenchError(f"template not created: {made.status_code} {made.text}")
                parallel = made.json()
                one_by_one = client.post(
                    "/api/workflows/",
                    json={"name": "one by one", "graph": chained(parallel["graph"])},
                    headers=headers,
                )
                if one_by_one.status_code != 201:
                    raise BenchError(f"chained workflow: {one_by_one.status_code}")
                sequential = one_by_one.json()
                # A first call each: the owner's data and the outbound pool are set up once.
                _timed_calls(client, parallel["webhook_url"], 1)
                _timed_calls(client, sequential["webhook_url"], 1)
                par_times, par_body = _timed_calls(client, parallel["webhook_url"], repeats)
                seq_times, seq_body = _timed_calls(client, sequential["webhook_url"], repeats)
        finally:
            app.process.terminate()
            try:
                app.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                app.process.kill()
                app.process.wait(timeout=30)
    expected = expected_body(SAMPLE)
    parallel_s, sequential_s = statistics.median(par_times), statistics.median(seq_times)
    result = {
        "bench": "multi_api",
        "calls": len(SOURCES),
        "latency_ms": LATENCY_MS,
        "repeats": repeats,
        "parallel_s": round(parallel_s, 3),
        "parallel_max_s": round(max(par_times), 3),
        "sequential_s": round(sequential_s, 3),
        "sequential_min_s": round(min(seq_times), 3),
        "ratio": round(sequential_s / parallel_s, 2),
        "body_ok": par_body == expected and seq_body == expected,
        "targets": TARGETS,
    }
    result["pass"] = bool(
        result["body_ok"]
        and result["parallel_max_s"] < TARGETS["parallel_max_s"]
        and result["sequential_min_s"] >= TARGETS["sequential_min_s"]
    )
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"multi_api: {result['calls']} calls at {result['latency_ms']} ms through POST /hooks "
        f"with Prefer: wait=10 — parallel {result['parallel_s']} s (max "
        f"{result['parallel_max_s']}, <{TARGETS['parallel_max_s']}), one by one "
        f"{result['sequential_s']} s (min {result['sequential_min_s']}, "
        f"≥{TARGETS['sequential_min_s']}), ratio {result['ratio']}×, body "
        f"{'ok' if result['body_ok'] else 'WRONG'} {'PASS' if result['pass'] else 'FAIL'}"
    )
