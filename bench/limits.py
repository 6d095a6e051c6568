"""(d) Limits: a hostile graph costs little, and a refused one costs less (issue 7, finding 2).

- `validate_2000`: a 2,000-block chain (each block reading its predecessor and the trigger)
  validates in under 1 s with under 100 MB of peak allocation (tracemalloc).
- `refuse_10000`: a 10,000-block graph, from the request body's bytes to the 400 naming
  KLYNTOS_MAX_BLOCKS (JSON parsing included), in under 1 s.

Ratios are measured / target: below 1 passes.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.limits import GraphLimits, GraphTooLarge, check_graph_size
from engine.core.validation import validate

TARGETS = {"validate_2000_s": 1.0, "validate_2000_peak_mb": 100.0, "refuse_10000_s": 1.0}


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
    body = json.dumps({"name": "huge", "graph": chain_graph(length)}).encode()
    started = time.perf_counter()
    try:
        check_graph_size(json.loads(body)["graph"], GraphLimits())
    except GraphTooLarge as exc:
        return time.perf_counter() - started, exc.setting
    raise RuntimeError(f"a {length}-block graph was not refused")


def run(quick: bool = False) -> dict[str, Any]:
    length = 200 if quick else 2000
    measure_validation(50)  # imports and first-call costs out of the way
    seconds, peak_mb, errors = measure_validation(length)
    refuse_s, setting = measure_refusal(2001 if quick else 10_000)
    result: dict[str, Any] = {
        "bench": "limits",
        "blocks": length,
        "validate_2000_s": round(seconds, 4),
        "validate_2000_peak_mb": round(peak_mb, 2),
        "validate_errors": errors,
        "refuse_10000_s": round(refuse_s, 4),
        "refused_by": setting,
        "targets": TARGETS,
    }
    result["ratios"] = {key: round(result[key] / target, 3) for key, target in TARGETS.items()}
    result["pass"] = errors == 0 and all(ratio < 1 for ratio in result["ratios"].values())
    return result


def summary(result: dict[str, Any]) -> str:
    return (
        f"limits: validate {result['blocks']} blocks {result['validate_2000_s']:.3f} s, "
        f"peak {result['validate_2000_peak_mb']:.1f} MB; refuse 10k blocks "
        f"{result['refuse_10000_s']:.3f} s ({result['refused_by']}) "
        f"{'PASS' if result['pass'] else 'MISS'}"
    )
