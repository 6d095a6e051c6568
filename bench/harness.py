"""What every benchmark shares: the template, leads, a headless engine run, the loop window.

The engine runs exactly as `engine.runner.execute_run` runs it (same registry, redactor
built from the run's env, one `Services` per run) minus Django and the run store, so a
benchmark measures the engine and not the database the events would be written to.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from engine.blocks import REGISTRY
from engine.core.data import DataConnection, SqliteData
from engine.core.events import Event, EventBus
from engine.core.executor import Executor, RunOptions, RunOutcome
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.redaction import Redactor
from engine.core.services import Services
from simulator.testing import RunningSimulator, run_in_process

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "builder" / "gallery" / "parallel-lead-enrichment.json"
SANDBOX_HOSTS = ("api.openai.com", "api.clearbit.com", "api.linkedin.com", "slack.com")
# Long enough to be redacted (Redactor.MIN_SECRET_LENGTH): the bus pays for redaction as in
# production, where the run's env values are the redactor's secrets.
BENCH_ENV = {"CLEARBIT_API_KEY": "cb-bench-secret-key", "LINKEDIN_API_KEY": "li-bench-secret-key"}

ENRICHED_LEADS_DDL = """
CREATE TABLE IF NOT EXISTS enriched_leads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    company TEXT NOT NULL,
    title TEXT NOT NULL,
    email TEXT NOT NULL,
    company_size INTEGER NULL,
    budget_estimate TEXT NOT NULL,
    urgency_level TEXT NOT NULL,
    qualification_score INTEGER NULL,
    linkedin_url TEXT NOT NULL,
    enriched_at TEXT NOT NULL
)
"""


class BenchError(RuntimeError):
    """The workflow did not do the work being timed, so its timing means nothing."""


# The host the loop benches call: routed to their local server by a host override.
BENCH_HOST = "bench.internal"


def one_get_loop_graph(concurrency: int, url: str, authorization: str) -> dict[str, Any]:
    """webhook → loop(parallel, `concurrency`) { one GET of `url` }, as the editor saves it."""
    return {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "parent": None, "config": {}},
            {
                "id": "loop",
                "type": "loop",
                "name": "loop",
                "parent": None,
                "config": {
                    "items": "<webhook.body.items>",
                    "variable": "item",
                    "execution": "parallel",
                    "max_concurrent": concurrency,
                },
            },
            {
                "id": "fetch",
                "type": "http",
                "name": "fetch",
                "parent": "loop",
                "config": {
                    "method": "GET",
                    "url": url,
                    "headers": {"Authorization": authorization},
                },
            },
        ],
        "edges": [
            {"source": "webhook", "target": "loop"},
            {"source": "loop", "target": "fetch", "handle": "body"},
        ],
    }


def template_graph() -> dict[str, Any]:
    return copy.deepcopy(json.loads(TEMPLATE.read_text())["graph"])


def template_block(graph: Mapping[str, Any], name: str) -> dict[str, Any]:
    return next(b for b in graph["blocks"] if b["name"] == name)


def make_leads(n: int, *, prefix: str = "lead") -> list[dict[str, Any]]:
    # Zero-padded tokens: no lead's email or domain is a substring of another's, so
    # simulator requests can be matched back to their lead by substring.
    return [
        {
            "id": f"{prefix}-{i:05d}",
            "name": f"Bench Person {prefix}{i:05d}",
            "company": f"Company{prefix}{i:05d}",
            "title": "VP Sales",
            "email": f"person.{prefix}{i:05d}@{prefix}{i:05d}.example",
            "domain": f"{prefix}{i:05d}.example",
            "message": "We need to enrich our inbound leads faster.",
        }
        for i in range(n)
    ]


def create_enriched_leads(path: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(ENRICHED_LEADS_DDL)


@contextmanager
def simulator(**options: Any) -> Iterator[RunningSimulator]:
    """The simulator in its own process, so it never competes for this event loop."""
    running = run_in_process(port=0, **options)
    try:
        yield running
    finally:
        running.stop()


def build_services(
    base_url: str,
    *,
    data: DataConnection | None = None,
    extra_hosts: tuple[str, ...] = (),
) -> Services:
    overrides = {host: base_url for host in (*SANDBOX_HOSTS, *extra_hosts)}
    return Services(
        outbound=OutboundFactory(OutboundConfig(host_overrides=overrides)),
        data=data,
        openai_api_key="sk-bench",
        slack_token="xoxb-bench",
    )


@dataclass
class LoopWindowSink:
    """Counts events and keeps only the top-level loop's start and finish times.

    As cheap as a sink can be while still timing the loop: keeping every event would make
    the benchmark measure its own memory, not the engine's.
    """

    loop_name: str = "loop"
    count: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None

    def __call__(self, event: Event) -> None:
        # The instrument's own cost counts against the engine it times: kept to the least.
        self.count += 1
        kind = event.type
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        if kind != "step.started" and kind != "step.finished":
            return
        data = event.data
        if data.get("name") == self.loop_name and data.get("item") == "":
            if kind == "step.started":
                self.started = event.at
            else:
                self.finished = event.at

    @property
    def window(self) -> tuple[float, float]:
        if self.started is None or self.finished is None:
            raise BenchError("the loop never started or never finished")
        return self.started, self.finished

    @property
    def wall(self) -> float:
        start, end = self.window
        return end - start


async def run_engine(
    graph: Mapping[str, Any],
    trigger_input: Any,
    services: Services,
    options: RunOptions,
    *,
    sink: LoopWindowSink | None = None,
    env: Mapping[str, str] = BENCH_ENV,
    expected_items: int | None = None,
) -> tuple[RunOutcome, LoopWindowSink]:
    """One run on a fresh `Services` (closed afterwards), like `execute_run` does."""
    sink = sink or LoopWindowSink()
    executor = Executor(
        parse_graph(graph),
        REGISTRY,
        bus=EventBus(sink, Redactor(env.values())),
        services=services,
        env=env,
        options=options,
    )
    try:
        outcome = await executor.run(trigger_input)
    finally:
        await services.aclose()
    if outcome.status != "succeeded":
        raise BenchError(
            f"run {outcome.status}: {outcome.error} ({outcome.failed_items} items failed)"
        )
    if expected_items is not None:
        done = sink.by_type.get("item.finished", 0)
        if done != expected_items:
            raise BenchError(f"{done} items finished, expected {expected_items}")
    return outcome, sink


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_high_water() -> bool:
    """Reset this process's peak RSS to its RSS now (Linux ≥ 4.0); False where it cannot."""
    try:
        _CLEAR_REFS.write_text("5")
        return _high_water() > 0
    except OSError:
        return False


def _high_water() -> int:
    """This process's peak RSS since it started or since the last reset, in bytes."""
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Peak RSS of this process between enter and exit.

    On Linux it is the kernel's own high-water mark (`VmHWM`, reset on enter by writing 5 to
    /proc/self/clear_refs): exact, and nothing runs meanwhile. A thread sampling every 20 ms
    took the GIL from the run it measured (the GIL passing to it and back ~50 times a
    second, and again around each of its reads), a cost the bare loop it is compared with
    never paid. Where the mark cannot be reset, it samples in a thread as before."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._high_water = False
        self.baseline = 0
        self.peak = 0
        self.samples = 0

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = self.rss()
        self._high_water = _reset_high_water()
        if not self._high_water:
            self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._high_water:
            self.peak = max(self.peak, _high_water(), self.rss())
            self.samples = 1
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / (1024 * 1024)


def run_template(base_url: str, db: str, leads: list[dict[str, Any]], options: RunOptions) -> float:
    """The lead template over `leads` against the simulator; the loop's wall time."""
    services = build_services(base_url, data=SqliteData(db))
    sink = LoopWindowSink()
    asyncio.run(
        run_engine(
            template_graph(),
            {"leads": leads},
            services,
            options,
            sink=sink,
            expected_items=len(leads),
        )
    )
    return sink.wall
