"""The workflow graph: blocks and edges, parsed from the JSON the editor saves (its sticky
`notes`, and each block's `pin` of test data, are checked for shape and otherwise left to
the editor: a run never reads them).

A Loop is the parent of its body blocks (React Flow's sub-flow model); loops nest. Edges join
blocks that share a parent, or a loop to one of its own children (the body's entry).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any

# `\Z`, not `$`: `$` also matches before a trailing newline, so "t\n" would pass. Call
# fullmatch() on it all the same.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
LOOP_TYPE = "loop"
# The block whose output answers a caller who waits (engine/blocks/response.py).
RESPONSE_TYPE = "response"


class GraphFormatError(ValueError):
    """The JSON is not a graph at all (as opposed to a graph that fails validation)."""


@dataclass(frozen=True, slots=True)
class Block:
    id: str
    type: str
    name: str
    parent: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    position: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_loop(self) -> bool:
        return self.type == LOOP_TYPE


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    handle: str | None = None


@dataclass(frozen=True)
class Graph:
    """Blocks and edges, with the lookups every pass needs computed once (each is linear in
    the graph: a 2,000-block graph must not cost 2,000 scans of its blocks)."""

    blocks: tuple[Block, ...]
    edges: tuple[Edge, ...]

    def __post_init__(self) -> None:
        by_id = {b.id: b for b in self.blocks}
        names: dict[str, Block] = {}
        children: dict[str | None, list[Block]] = {}
        for block in self.blocks:
            names.setdefault(block.name, block)
            children.setdefault(block.parent, []).append(block)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_name", names)
        object.__setattr__(self, "_children", children)
        object.__setattr__(self, "_predecessors", {})

    @property
    def by_id(self) -> dict[str, Block]:
        return self._by_id  # type: ignore[attr-defined,no-any-return]

    def block(self, block_id: str) -> Block:
        return self.by_id[block_id]

    def by_name(self, name: str) -> Block | None:
        """The first block with this name (names are unique in a valid graph)."""
        return self._by_name.get(name)  # type: ignore[attr-defined,no-any-return]

    def children(self, parent: str | None) -> list[Block]:
        return list(self._children.get(parent, ()))  # type: ignore[attr-defined]

    def descendants(self, block_id: str) -> list[Block]:
        """The blocks inside a loop, nested loops' bodies included (depth first)."""
        found: list[Block] = []
        seen: set[str] = {block_id}
        stack = [block_id]
        while stack:
            for child in self.children(stack.pop()):
                if child.id not in seen:
                    seen.add(child.id)
                    found.append(child)
                    stack.append(child.id)
        return found

    def ancestors(self, block_id: str) -> list[Block]:
        """Enclosing loops, innermost first."""
        chain: list[Block] = []
        parent = self.by_id[block_id].parent
        seen: set[str] = set()
        while parent is not None and parent in self.by_id and parent not in seen:
            seen.add(parent)
            chain.append(self.by_id[parent])
            parent = self.by_id[parent].parent
        return chain

    def predecessors(self, parent: str | None) -> Mapping[str, Set[str]]:
        """Each sibling under `parent` → the siblings with an edge into it, computed once for
        every level in one pass over the edges. Shared: callers read it, never change it."""
        cache: dict[str | None, dict[str, set[str]]] = self._predecessors  # type: ignore[attr-defined]
        if not cache:
            for level, blocks in self._children.items():  # type: ignore[attr-defined]
                cache[level] = {b.id: set() for b in blocks}
            for edge in self.edges:
                source, target = self.by_id.get(edge.source), self.by_id.get(edge.target)
                if source is not None and target is not None and source.parent == target.parent:
                    cache[target.parent][target.id].add(source.id)
        return cache.get(parent, {})


BLOCK_KEYS = {"id", "type", "name", "parent", "config", "position"}


def parse_graph(data: Any) -> Graph:
    """Turn saved JSON into a Graph; raises GraphFormatError naming what is malformed."""
    if not isinstance(data, Mapping):
        raise GraphFormatError("a workflow graph must be an object with 'blocks' and 'edges'")
    raw_blocks = data.get("blocks", [])
    raw_edges = data.get("edges", [])
    if not isinstance(raw_blocks, list) or not isinstance(raw_edges, list):
        raise GraphFormatError("'blocks' and 'edges' must be lists")
    blocks = [_parse_block(i, raw) for i, raw in enumerate(raw_blocks)]
    edges = [_parse_edge(i, raw) for i, raw in enumerate(raw_edges)]
    _check_notes(data.get("notes"))
    return Graph(tuple(blocks), tuple(edges))


def _check_notes(notes: Any) -> None:
    """Sticky notes are kept with the graph for the editor and never run: only their shape
    is checked (their count and length are limits.py's)."""
    if notes is None:
        return
    if not isinstance(notes, list):
        raise GraphFormatError("'notes' must be a list")
    for index, note in enumerate(notes):
        if not isinstance(note, Mapping):
            raise GraphFormatError(f"notes[{index}] must be an object")
        if not isinstance(note.get("id"), str) or not isinstance(note.get("text"), str):
            raise GraphFormatError(f"notes[{index}] needs a string 'id' and 'text'")
        for key in ("position", "size"):
            if not isinstance(note.get(key, {}), Mapping):
                raise GraphFormatError(f"notes[{index}].{key} must be an object")


def _parse_block(index: int, raw: Any) -> Block:
    if not isinstance(raw, Mapping):
        raise GraphFormatError(f"blocks[{index}] must be an object")
    for key in ("id", "type", "name"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            raise GraphFormatError(f"blocks[{index}].{key} must be a non-empty string")
    parent = raw.get("parent")
    if parent is not None and not isinstance(parent, str):
        raise GraphFormatError(f"blocks[{index}].parent must be a block id or null")
    config = raw.get("config") or {}
    position = raw.get("position") or {}
    if not isinstance(config, Mapping) or not isinstance(position, Mapping):
        raise GraphFormatError(f"blocks[{index}].config and .position must be objects")
    pin = raw.get("pin")
    if pin is not None and not isinstance(pin, Mapping):
        raise GraphFormatError(f"blocks[{index}].pin must be an object or null")
    extra = {k: v for k, v in raw.items() if k not in BLOCK_KEYS}
    return Block(
        id=raw["id"],
        type=raw["type"],
        name=raw["name"],
        parent=parent or None,
        config=dict(config),
        position=dict(position),
        extra=extra,
    )


def _parse_edge(index: int, raw: Any) -> Edge:
    if not isinstance(raw, Mapping):
        raise GraphFormatError(f"edges[{index}] must be an object")
    source, target = raw.get("source"), raw.get("target")
    if not isinstance(source, str) or not isinstance(target, str):
        raise GraphFormatError(f"edges[{index}] needs string 'source' and 'target'")
    handle = raw.get("handle")
    return Edge(source=source, target=target, handle=handle if isinstance(handle, str) else None)
