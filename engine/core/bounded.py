"""Bounding values that come from outside before they travel (websocket frames, stored run
outputs, prompts): a big value is replaced by a visible marker, never silently dropped.

The marker shapes are part of docs/run-protocol.md ("Trimming").
"""

from __future__ import annotations

import json
from typing import Any

PREVIEW_CHARS = 200


def json_size(value: Any) -> int:
    """Bytes of the value's compact JSON (UTF-8); what it costs on the wire."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def trimmed_marker(value: Any, size: int | None = None) -> dict[str, Any]:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return {
        "$trimmed": True,
        "bytes": size if size is not None else len(text.encode()),
        "preview": text[:PREVIEW_CHARS],
    }


def trim_value(value: Any, max_bytes: int) -> Any:
    """The value itself when its JSON fits in `max_bytes`, else a `$trimmed` marker."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and len(value) * 4 <= max_bytes:  # fits whatever the encoding
        return value
    size = json_size(value)
    return value if size <= max_bytes else trimmed_marker(value, size)


def trim_text(text: str, max_chars: int) -> str:
    """Text cut to about `max_chars` characters, ending with a marker saying how long it was."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… [trimmed, {len(text)} characters]"


def omitted(count: int) -> dict[str, Any]:
    """What stands for a per-item list (a loop's results) in stored outputs."""
    return {"$omitted": True, "count": count}


# A loop's per-item lists: stored as a count, the items themselves are rows of their own.
PER_ITEM_LISTS = ("results", "failed")


def stored_output(output: Any, *, is_loop: bool) -> Any:
    """A block's output as it is stored and served: a loop's per-item lists become counts,
    so the answer does not grow with N (other outputs are bounded by
    KLYNTOS_MAX_OUTPUT_BYTES when they are made)."""
    if is_loop and isinstance(output, dict):
        return {
            k: omitted(len(v)) if k in PER_ITEM_LISTS and isinstance(v, list) else v
            for k, v in output.items()
        }
    return output
