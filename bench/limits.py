"""(d) Limits: a hostile graph costs little, and a refused one costs less (issue 7, finding 2).

- `validate_2000`: a 2,000-block chain (each block reading its predecessor and the trigger)
  validates in under 1 s with under 100 MB of peak allocation (tracemalloc).
- `refuse_10000`: a 10,000-block graph (1.6 MB), from the request body's bytes through the
  API's JSON parser to the refusal naming KLYNTOS_MAX_BLOCKS, in under 1 s.
- `doubling_25`: a run whose transform is `@ | [@, @]` ×25 (finding 4) fails its step with
  the size error in under 2 s; `loop_gap_ms` is the longest the event loop went without
  turning while the step ran, and while a heavy but legal expression (a sort and a
  projection over 20,000 items) ran — under 100 ms: the server stays responsive.
  `loop_gap_whole_run_ms` reports the same over the whole run (it includes measuring and
  recording the 20,000-item trigger body on the loop).

Ratios are measured / target: below 1 passes.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from typing import Any

from builder.webhook_security import load_json
from engine.blocks import REGISTRY
from engine.core.events import Event, EventBus
from engine.core.executor import Executor, RunOptions
from engine.core.graph import parse_graph
from engine.core.limits import GraphLimits, GraphTooLarge, check_graph_size
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.services import Services
from engine.core.validation import validate

TARGETS = {
    "validate_2000_s": 1.0,
    "validate_2000_peak_mb": 100.0,
    "refuse_10000_s": 1.0,
    "doubling_25_s": 2.0,
    "loop_gap_ms": 100.0,
}
DOUBLING = "@" + " | [@, @]" * 25
HEAVY = "sort_by(@, &v)[*].{a: v, b: k, c: [v, k]}"


def chain_graph(length: int, *, secret: str | None = None) -> dict[str, Any]:
    """A webhook followed by `length - 1` transforms, each reading its predecessor and the
    trigger, so every block's scope holds everything upstream of it (the worst case for a
    validator that copies scopes)."""
    blocks: list[dict[str, Any]] = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}
    ]
    edges = []
    previous = "webhook"
    for index in range(length - 1):
        name = f"t{index}"
        text = f"<{previous}> <webhook.body>" + (f" <env.{secret}>" if secret else "")
        blocks.append(
            {
                "id": name,
                "type": "transform",
                "name": name,
                "config": {"input": text, "expression": "@"},
            }
        )
        edges.append({"source": previous, "target": name})
        previous = name
    return {"blocks": blocks, "edges": edges}


def measure_validation(length: int) -> tuple[float, float, int]:
    """(seconds, peak MB, errors) of parsing and validating a chain of `length` blocks: timed
    untraced (tracemalloc slows allocation), then traced once for the peak."""
    raw = chain_graph(length)
    started = time.perf_counter()
    result = validate(parse_graph(raw), REGISTRY, [], GraphLimits())
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        validate(parse_graph(raw), REGISTRY, [], GraphLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return elapsed, peak / 1e6, len(result.errors)


def measure_refusal(length: int) -> tuple[float, str]:
    """The request body's bytes through the API's own parser (UTF-8, depth and storability
    checks: builder/parsers.py) to the limit check; Django's plumbing is not included."""
    body = json.dumps({"name": "huge", "graph": chain_graph(length)}).encode()
    started = time.perf_counter()
    try:
        check_graph_size(load_json(body, max_depth=32)["graph"], GraphLimits())
    except GraphTooLarge as exc:
        return time.perf_counter() - started, exc.setting
    raise RuntimeError(f"a {length}-block graph was not refused")


def transform_graph(expression: str) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "t",
                "type": "transform",
                "name": "t",
                "config": {"input": "<webhook.body>", "expression": expression},
            },
        ],
        "edges": [{"source": "webhook", "target": "t"}],
    }


async def run_transform(expression: str, body: Any) -> tuple[float, float, float, str | None]:
    """(seconds, longest event-loop gap in ms while the transform step ran, longest over the
    whole run, the step's error) of a headless run. The whole-run gap also holds measuring
    and recording the trigger's output, which is the body's size, not the expression's."""
    errors: list[str] = []
    window: dict[str, float] = {}

    def sink(event: Event) -> None:
        if event.data.get("block") == "t":
            window.setdefault(event.type, time.perf_counter())
        if event.type == "step.failed":
            errors.append(str(event.data.get("error")))

    services = Services(outbound=OutboundFactory(OutboundConfig()))
    executor = Executor(
        parse_graph(transform_graph(expression)),
        REGISTRY,
        bus=EventBus(sink),
        services=services,
        options=RunOptions(),
    )
    ticks: list[float] = []
    running = True

    async def ticker() -> None:
        while running:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.001)

    beat = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    try:
        await executor.run(body)
    finally:
        elapsed = time.perf_counter() - started
        running = False
        await beat
        await services.aclose()
    begin = window.get("step.started", started)
    end = window.get("step.finished", window.get("step.failed", started + elapsed))
    gaps = list(zip(ticks, ticks[1:], strict=False))
    in_step = [b - a for a, b in gaps if begin <= a <= end]
    overall = [b - a for a, b in gaps]
    return (
        elapsed,
        max(in_step, default=0.0) * 1000,
        max(overall, default=0.0) * 1000,
        errors[0] if errors else None,
    )


def run(quick: bool = False) -> dict[str, Any]:
    length = 200 if quick else 2000
    measure_validation(50)  # imports and first-call costs out of the way
    seconds, peak_mb, errors = measure_validation(length)
    refuse_s, setting = measure_refusal(2001 if quick else 10_000)
    doubling_s, doubling_gap, doubling_run_gap, doubling_error = asyncio.run(
        run_transform(DOUBLING, {"lead": {"name": "Ada", "email": "ada@example.com"}})
    )
    items = [
        {"k": f"key-{i}", "v": (i * 7919) % 100_003} for i in range(2_000 if quick else 20_000)
    ]
    heavy_s, heavy_gap, heavy_run_gap, heavy_error = asyncio.run(run_transform(HEAVY, items))
    result: dict[str, Any] = {
        "bench": "limits",
        "blocks": length,
        "validate_2000_s": round(seconds, 4),
        "validate_2000_peak_mb": round(peak_mb, 2),
        "validate_errors": errors,
        "refuse_10000_s": round(refuse_s, 4),
        "refused_by": setting,
        "doubling_25_s": round(doubling_s, 4),
        "doubling_error": doubling_error,
        "heavy_expression_s": round(heavy_s, 4),
        "heavy_expression_error": heavy_error,
        "loop_gap_ms": round(max(doubling_gap, heavy_gap), 2),
        "loop_gap_whole_run_ms": round(max(doubling_run_gap, heavy_run_gap), 2),
        "targets": TARGETS,
    }
    result["ratios"] = {key: round(result[key] / target, 3) for key, target in TARGETS.items()}
    size_error = "larger than" in (doubling_error or "") and heavy_error is None
    result["pass"] = (
        errors == 0 and size_error and all(ratio < 1 for ratio in result["ratios"].values())
    )
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"limits: validate {result['blocks']} blocks {result['validate_2000_s']:.3f} s, "
        f"peak {result['validate_2000_peak_mb']:.1f} MB; refuse 10k blocks "
        f"{result['refuse_10000_s']:.3f} s ({result['refused_by']}); @|[@,@]x25 fails in "
        f"{result['doubling_25_s']:.3f} s; heavy expression {result['heavy_expression_s']:.2f} s; "
        f"longest loop gap {result['loop_gap_ms']:.0f} ms "
        f"{'PASS' if result['pass'] else 'MISS'}"
    )
