"""(j) Item finished → shown in Chromium: how long after an item ends the open editor counts it.

The app starts the way `make run` starts it (`manage.py run_local`: daphne, SQLite, the
in-memory channel layer, its sandbox simulator) in a subprocess. Chromium (Playwright) opens
the editor of a workflow webhook → loop (10 at once) → one GET answered after 50 ms, shows
the Progress tab, and records the wall clock each time the "done/total" counter grows. The run
is started by a POST to the webhook (the editor hears of it over the workflow socket). Then
every item's `finished_at` is read over REST: the k-th item to finish is shown when the
counter first reads >= k, and its delay is that moment minus its `finished_at` (one machine,
one clock). Reported: p50 / p95 / max of the delays over all items, and the run's wall time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import BenchError

LATENCY_MS = 50
CONCURRENCY = 10
TARGETS = {"p95_ms": 1000.0}
RUN_TIMEOUT = 600.0

# Records [done, Date.now()] each time the Progress counter's number grows.
WATCH = """() => {
  window.__seen = [];
  let last = -1;
  const look = () => {
    const el = document.querySelector('[data-testid="progress"]');
    if (!el) return;
    const done = parseInt(el.textContent, 10);
    if (done > last) { last = done; window.__seen.push([done, Date.now()]); }
  };
  new MutationObserver(look).observe(document.body,
    {subtree: true, childList: true, characterData: true});
}"""


def delay_graph() -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "parent": None,
             "config": {}, "position": {"x": 0, "y": 120}},
            {"id": "loop", "type": "loop", "name": "loop", "parent": None,
             "config": {"items": "<webhook.body.items>", "max_concurrent": CONCURRENCY},
             "position": {"x": 300, "y": 60}, "style": {"width": 420, "height": 220}},
            {"id": "lookup", "type": "http", "name": "lookup", "parent": "loop",
             "position": {"x": 60, "y": 80},
             "config": {"method": "GET",
                        "url": "https://api.clearbit.com/v2/companies/find?domain=<item.d>",
                        "headers": {"Authorization": "Bearer <env.CLEARBIT_API_KEY>"}}},
        ],
        "edges": [{"source": "webhook", "target": "loop"}],
    }  # fmt: skip


def _stamp(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def delays(seen: list[list[float]], finished: list[float]) -> list[float]:
    """Seconds from each item's end to the first counter reading that includes it."""
    out = []
    at = 0
    for k, ended in enumerate(sorted(finished), start=1):
        while at < len(seen) and seen[at][0] < k:
            at += 1
        if at == len(seen):
            raise BenchError(f"the editor never counted {k} items done")
        out.append(seen[at][1] / 1000 - ended)
    return out


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _finished_at(client: httpx.Client, run_id: str) -> list[float]:
    ends: list[float] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/runs/{run_id}/items/", params=params).json()
        ends += [_stamp(i["finished_at"]) for i in page["results"] if i["finished_at"]]
        cursor = page["next"]
        if not cursor:
            return ends


def run(*, quick: bool = False) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_local_app

    n = 100 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        app = start_local_app(Path(tmp) / "data")
        try:
            httpx.post(
                app.simulator_url + "/_sim/config",
                json={"latency_ms": LATENCY_MS},
                headers={"X-Simulator-Token": app.simulator_token},
            ).raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                context = browser.new_context(
                    base_url=app.base_url, viewport={"width": 1440, "height": 900}
                )
                page = context.new_page()
                page.goto("/login/")
                page.fill("input[name=username]", "admin")
                page.fill("input[name=password]", app.password)
                page.click("button[type=submit], input[type=submit]")
                page.wait_for_url(re.compile(r".*/$"))
                token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
                created = page.request.post(
                    "/api/workflows/",
                    data=json.dumps({"name": "editor delay bench", "graph": delay_graph()}),
                    headers={"Content-Type": "application/json", "X-CSRFToken": token},
                )
                if not created.ok:
                    raise BenchError(f"workflow not created: {created.status} {created.text()}")
                workflow = created.json()
                page.goto(f"/workflows/{workflow['id']}/")
                page.locator('[data-block-name="lookup"]').wait_for()
                page.click('[data-testid="tab-progress"]')
                page.evaluate(WATCH)
                items = [{"d": f"c{i}.example"} for i in range(n)]
                started = time.perf_counter()
                answer = httpx.post(workflow["webhook_url"], json={"items": items}, timeout=30)
                if answer.status_code != 202:
                    raise BenchError(f"webhook refused: {answer.status_code} {answer.text}")
                run_id = answer.json()["run_id"]
                page.locator('[data-testid="run-status"][data-status="succeeded"]').wait_for(
                    timeout=RUN_TIMEOUT * 1000
                )
                wall = time.perf_counter() - started
                seen = page.evaluate("() => window.__seen")
                with httpx.Client(base_url=app.base_url, timeout=60) as client:
                    for cookie in context.cookies():
                        client.cookies.set(cookie["name"], cookie["value"])
                    finished = _finished_at(client, run_id)
                browser.close()
        finally:
            app.process.terminate()
            app.process.wait(timeout=30)

    if len(finished) != n:
        raise BenchError(f"{len(finished)} of {n} items finished")
    values = delays(seen, finished)
    result: dict[str, Any] = {
        "bench": "editor_delay",
        "n": n,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "wall_s": round(wall, 2),
        "counter_updates": len(seen),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(_percentile(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "targets": TARGETS,
    }
    result["pass"] = result["p95_ms"] <= TARGETS["p95_ms"]
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"editor_delay: n={result['n']} item finished → counted in Chromium p50 "
        f"{result['p50_ms']} ms, p95 {result['p95_ms']} ms (≤{TARGETS['p95_ms']:.0f}), max "
        f"{result['max_ms']} ms over {result['counter_updates']} counter updates "
        f"{'PASS' if result['pass'] else 'FAIL'}"
    )
