"""What changed between two saved graphs, for the editor's version diff: blocks added,
removed, changed (each changed field as a dotted path with its two values) or only moved,
edges added or removed, and pinned test data (a block's `pin`, never run) added, removed or
replaced, listed apart so a pin never reads as a change of what runs. Blocks are matched by
id, the way references and edges name them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

# A prompt or a schema can be long: each side of a changed field is cut for display.
MAX_VALUE_CHARS = 2000
LAYOUT_KEYS = frozenset({"position", "size", "width", "height"})
PIN_KEY = "pin"


def graph_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    old = _blocks(before)
    new = _blocks(after)
    changed, moved = [], []
    for block_id in old.keys() & new.keys():
        fields = list(_changed_fields(_unpinned(old[block_id]), _unpinned(new[block_id]), ""))
        content = [f for f in fields if f["path"].split(".")[0] not in LAYOUT_KEYS]
        if content:
            changed.append({**_label(new[block_id]), "fields": content})
        elif fields:
            moved.append(_label(new[block_id]))
    old_edges, new_edges = _edges(before), _edges(after)
    return {
        "blocks": {
            "added": sorted((_label(new[i]) for i in new.keys() - old.keys()), key=_by_id),
            "removed": sorted((_label(old[i]) for i in old.keys() - new.keys()), key=_by_id),
            "changed": sorted(changed, key=_by_id),
            "moved": sorted(moved, key=_by_id),
        },
        "edges": {
            "added": [_edge_dict(e) for e in sorted(new_edges - old_edges)],
            "removed": [_edge_dict(e) for e in sorted(old_edges - new_edges)],
        },
        "pins": _pin_changes(old, new),
    }


def _unpinned(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != PIN_KEY}


def _pin_changes(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Blocks whose pin appeared, went (the block kept), or holds other data now."""
    answer: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}
    for block_id in sorted(old.keys() | new.keys()):
        before = old[block_id].get(PIN_KEY) if block_id in old else None
        after = new[block_id].get(PIN_KEY) if block_id in new else None
        if before == after or block_id not in new or block_id not in old:
            continue  # a removed or added block says so itself
        kind = "added" if before is None else "removed" if after is None else "changed"
        answer[kind].append(_label(new[block_id]))
    return answer


def _blocks(graph: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    blocks = graph.get("blocks") if isinstance(graph, Mapping) else None
    return {
        str(b["id"]): b
        for b in (blocks if isinstance(blocks, list) else [])
        if isinstance(b, Mapping) and "id" in b
    }


def _edges(graph: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    edges = graph.get("edges") if isinstance(graph, Mapping) else None
    return {
        (str(e.get("source")), str(e.get("target")), str(e.get("handle") or ""))
        for e in (edges if isinstance(edges, list) else [])
        if isinstance(e, Mapping)
    }


def _edge_dict(edge: tuple[str, str, str]) -> dict[str, str]:
    source, target, handle = edge
    return {"source": source, "target": target, **({"handle": handle} if handle else {})}


def _label(block: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": block["id"], "name": block.get("name") or block["id"], "type": block.get("type")}


def _by_id(entry: Mapping[str, Any]) -> str:
    return str(entry["id"])


def _changed_fields(old: Any, new: Any, path: str) -> Iterator[dict[str, Any]]:
    """Leaf differences between two JSON values; objects are walked key by key, anything
    else (lists included: a reordered list is one change) compared whole."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys(), key=str):
            if key == "id" and not path:
                continue
            inner = f"{path}.{key}" if path else str(key)
            yield from _changed_fields(old.get(key, _MISSING), new.get(key, _MISSING), inner)
    elif old != new:
        change = "added" if old is _MISSING else "removed" if new is _MISSING else "changed"
        yield {"path": path, "change": change, "before": _shown(old), "after": _shown(new)}


class _Missing:
    pass


_MISSING = _Missing()


def _shown(value: Any) -> Any:
    """The value as the diff shows it: absent as null (`change` says which), long values cut."""
    if value is _MISSING:
        return None
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return text[:MAX_VALUE_CHARS] + f"… ({len(text) - MAX_VALUE_CHARS} more characters)"
