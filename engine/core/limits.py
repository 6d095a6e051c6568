"""Size limits on what a user controls: the graph they save, the values their blocks make.

The graph limits are checked on the raw JSON before anything else looks at it, so a graph
past them costs one pass over its lists, never a validation. The defaults mirror
`klyntos/settings.py` (KLYNTOS_MAX_BLOCKS, KLYNTOS_MAX_EDGES, KLYNTOS_MAX_LOOP_DEPTH,
KLYNTOS_MAX_NOTES, KLYNTOS_MAX_NOTE_CHARS, KLYNTOS_MAX_PIN_BYTES).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The most items one loop runs at once (its `max_concurrent`, a run's override). The outbound
# connection pool (engine/core/outbound.py) is as large, so a loop's items never queue for
# a connection: a pool wait would otherwise eat into their attempt timeouts.
MAX_CONCURRENT = 1000

# The largest wave a loop's `batch_size` asks for (waves run one after the other, each
# through the sliding window of `max_concurrent`, so a batch holds nothing per item; the
# bound only keeps the number sane: a batch past the item count is one wave).
MAX_BATCH_SIZE = 100_000

# The largest dollar budget a run or a workflow may ask for (`budget_usd`): a budget is a
# brake, so the bound only refuses numbers that are surely a typo.
MAX_BUDGET_USD = 1_000_000.0

# A run's share of the providers it shares with other runs (`weight`, `priority`, issue 9
# item 4): weights from a hundredth to a hundred, priorities from -100 to 100 (higher first).
MIN_RUN_WEIGHT = 0.01
MAX_RUN_WEIGHT = 100.0
MAX_RUN_PRIORITY = 100

# A run's loop items, all its loops together (nested ones included): how many may be in
# flight at once (KLYNTOS_MAX_ITEMS_IN_FLIGHT; `max_concurrent` bounds one loop instance,
# and nested caps multiply), and how many its loops may fan out to in all
# (KLYNTOS_MAX_ITEMS_PER_RUN: counted as each loop starts, so 1000 × 1000 × 1000 is refused
# after a few thousand items, not attempted). A million items is a million item rows and
# at least as many step rows: past that a batch belongs in several runs.
DEFAULT_MAX_ITEMS_IN_FLIGHT = 1000
MAX_ITEMS_IN_FLIGHT = 10_000
DEFAULT_MAX_ITEMS_PER_RUN = 1_000_000
MAX_ITEMS_PER_RUN = 10_000_000

# The most items an estimate runs per loop (`sample_items`) before extrapolating.
MAX_SAMPLE_ITEMS = 1000

# Run rows store item keys (loop names and indexes chained) in varchar(500): five levels of
# 64-character names fit, a sixth may not. Settings may lower the depth, never raise it.
LOOP_DEPTH_CEILING = 5


@dataclass(frozen=True, slots=True)
class GraphLimits:
    max_blocks: int = 2000
    max_edges: int = 10000
    max_loop_depth: int = LOOP_DEPTH_CEILING
    # Sticky notes on the canvas (the graph's `notes`): how many, and the text of each.
    max_notes: int = 200
    max_note_chars: int = 10_000
    # A schedule trigger fires at most this often (KLYNTOS_SCHEDULE_MIN_SECONDS).
    min_schedule_seconds: int = 60
    # Test data pinned to blocks (each block's `pin`), all together, as JSON.
    max_pin_bytes: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.max_loop_depth <= LOOP_DEPTH_CEILING:
            raise ValueError(f"max_loop_depth must be between 1 and {LOOP_DEPTH_CEILING}")
        if self.max_blocks < 1 or self.max_edges < 0:
            raise ValueError("max_blocks must be at least 1 and max_edges at least 0")
        if self.max_notes < 0 or self.max_note_chars < 0:
            raise ValueError("max_notes and max_note_chars must be at least 0")


class GraphTooLarge(ValueError):
    """A graph past one of the limits; the message names the limit and its setting."""

    def __init__(self, setting: str, limit: int, actual: int, what: str) -> None:
        self.setting = setting
        self.limit = limit
        self.actual = actual
        super().__init__(f"the workflow has {actual} {what}; the limit is {limit} ({setting})")


def check_graph_size(data: Any, limits: GraphLimits) -> None:
    """Raise GraphTooLarge when the saved JSON exceeds a limit. Malformed JSON passes
    through (parsing reports it); this only counts."""
    if not isinstance(data, Mapping):
        return
    blocks, edges = data.get("blocks"), data.get("edges")
    if isinstance(blocks, list) and len(blocks) > limits.max_blocks:
        raise GraphTooLarge("KLYNTOS_MAX_BLOCKS", limits.max_blocks, len(blocks), "blocks")
    if isinstance(edges, list) and len(edges) > limits.max_edges:
        raise GraphTooLarge("KLYNTOS_MAX_EDGES", limits.max_edges, len(edges), "edges")
    notes = data.get("notes")
    if isinstance(notes, list):
        if len(notes) > limits.max_notes:
            raise GraphTooLarge("KLYNTOS_MAX_NOTES", limits.max_notes, len(notes), "notes")
        longest = max(
            (
                len(n["text"])
                for n in notes
                if isinstance(n, Mapping) and isinstance(n.get("text"), str)
            ),
            default=0,
        )
        if longest > limits.max_note_chars:
            raise GraphTooLarge(
                "KLYNTOS_MAX_NOTE_CHARS", limits.max_note_chars, longest, "characters in one note"
            )
    if isinstance(blocks, list):
        pinned = pin_bytes(blocks)
        if pinned > limits.max_pin_bytes:
            raise GraphTooLarge(
                "KLYNTOS_MAX_PIN_BYTES", limits.max_pin_bytes, pinned, "bytes of pinned test data"
            )
        depth = loop_nesting(blocks)
        if depth > limits.max_loop_depth:
            raise GraphTooLarge(
                "KLYNTOS_MAX_LOOP_DEPTH", limits.max_loop_depth, depth, "levels of nested loops"
            )


def pin_bytes(blocks: list[Any]) -> int:
    """The JSON size of every block's pinned test data (`pin`), together."""
    pins = [b["pin"] for b in blocks if isinstance(b, Mapping) and b.get("pin") is not None]
    if not pins:
        return 0
    return len(json.dumps(pins, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def loop_nesting(blocks: list[Any]) -> int:
    """The deepest nesting of loops in raw block JSON, in one pass (memoised walk up the
    parents; a circle of parents counts once round and is validation's to report)."""
    parent_of: dict[str, Any] = {}
    is_loop: dict[str, bool] = {}
    for raw in blocks:
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            parent_of.setdefault(raw["id"], raw.get("parent"))
            is_loop.setdefault(raw["id"], raw.get("type") == "loop")
    depth: dict[str, int] = {}
    deepest = 0
    for start in parent_of:
        path: list[str] = []
        on_path: set[str] = set()
        current: Any = start
        while isinstance(current, str) and current in parent_of and current not in depth:
            if current in on_path:
                break
            path.append(current)
            on_path.add(current)
            current = parent_of[current]
        below = depth.get(current, 0) if isinstance(current, str) else 0
        for block_id in reversed(path):
            below += 1 if is_loop[block_id] else 0
            depth[block_id] = below
        deepest = max(deepest, depth.get(start, 0))
    return deepest
