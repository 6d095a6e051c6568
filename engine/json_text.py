"""JSON text for big documents, encoded in slices so other threads keep running.

`json.dumps` runs in C and holds the GIL for the whole call: the outputs of a 100,000-item
loop (tens of MB) encoded in one call stop every other thread — the web server's included —
for a second or more. Encoding a big list or object a slice at a time gives the interpreter
a chance to switch threads between slices; the text is the same as `json.dumps` would make.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import JSONField, Value
from django.db.models.functions import Cast

from engine.core.json_fast import strict

# Elements per slice: ~1,000 loop results are a few hundred KB, a few ms of encoding.
SLICE = 1000


def dumps_in_slices(value: Any, slice_size: int = SLICE) -> str:
    """`json.dumps(value)`, byte for byte, with lists longer than `slice_size` (found through
    objects, not inside lists) encoded `slice_size` elements at a time."""
    if isinstance(value, list | tuple) and len(value) > slice_size:
        slices = (
            json.dumps(list(value[i : i + slice_size]))[1:-1]
            for i in range(0, len(value), slice_size)
        )
        return "[" + ", ".join(slices) + "]"
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        members = (f"{json.dumps(k)}: {dumps_in_slices(v, slice_size)}" for k, v in value.items())
        return "{" + ", ".join(members) + "}"
    return json.dumps(value)


def json_expression(value: Any) -> Cast:
    """`value` as an expression a JSONField column accepts, encoded by `dumps_in_slices`."""
    return Cast(Value(dumps_in_slices(value)), output_field=JSONField())


def dumps_rows(rows: list[Any], slice_size: int) -> str:
    """A list of row records as one JSON document for the database, `slice_size` rows per
    encoding call (engine/core/json_fast.py `strict`: every stored item's and step's row goes
    through here, bench g). The text parses to what `json.dumps` would write, and what jsonb
    would refuse fails either here (NaN, ±Infinity, a type that is not JSON) or in the
    database (NUL characters, lone surrogates), so the store's fallback (engine/store.py
    `_storable`) still applies."""
    slices = (strict(rows[i : i + slice_size])[1:-1] for i in range(0, len(rows), slice_size))
    return "[" + ",".join(slices) + "]"
