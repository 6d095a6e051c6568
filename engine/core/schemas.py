"""Output schemas as JSON Schema, and walking a reference path through them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonSchema = dict[str, Any]
SCALARS = {"string", "integer", "number", "boolean", "null"}


def obj(properties: Mapping[str, JsonSchema], *, open_: bool = False) -> JsonSchema:
    schema: JsonSchema = {"type": "object", "properties": dict(properties)}
    if open_:
        schema["additionalProperties"] = True
    return schema


def array(items: JsonSchema) -> JsonSchema:
    return {"type": "array", "items": items}


def is_open(schema: Mapping[str, Any]) -> bool:
    """An open schema accepts any field path below it (e.g. an HTTP response body)."""
    return "type" not in schema and "properties" not in schema and "items" not in schema


def field_error(schema: Mapping[str, Any], path: tuple[str, ...], root: str) -> str | None:
    """Why `root.path` does not exist in `schema`, or None when it may exist."""
    current: Mapping[str, Any] = schema
    walked = [root]
    for segment in path:
        where = ".".join(walked)
        if is_open(current):
            return None
        kind = current.get("type")
        if "properties" in current or kind == "object":
            properties = current.get("properties", {})
            if segment in properties:
                current = properties[segment]
            elif current.get("additionalProperties") or "properties" not in current:
                return None
            else:
                fields = ", ".join(sorted(properties)) or "none"
                return f"'{where}' has no field '{segment}' (fields: {fields})"
        elif kind == "array" or "items" in current:
            if not segment.isdigit():
                return f"'{where}' is a list; use an index, not '{segment}'"
            current = current.get("items", {})
        elif kind in SCALARS or isinstance(kind, list):
            return f"'{where}' is {kind}, it has no field '{segment}'"
        else:
            return None
        walked.append(segment)
    return None


def schema_at(schema: Mapping[str, Any], path: tuple[str, ...]) -> JsonSchema:
    """The schema found at `path`, or an open schema when it cannot be known."""
    current: Mapping[str, Any] = schema
    for segment in path:
        if "properties" in current and segment in current["properties"]:
            current = current["properties"][segment]
        elif "items" in current and segment.isdigit():
            current = current["items"]
        else:
            return {}
    return dict(current)


def list_fields(schema: Mapping[str, Any], prefix: str, depth: int = 3) -> list[dict[str, Any]]:
    """Flatten a schema into reference entries for the editor's picker."""
    entries = [{"ref": prefix, "type": _type_name(schema)}]
    if depth <= 0:
        return entries
    for name, sub in (schema.get("properties") or {}).items():
        entries.extend(list_fields(sub, f"{prefix}.{name}", depth - 1))
    return entries


def _type_name(schema: Mapping[str, Any]) -> str:
    if is_open(schema):
        return "any"
    kind = schema.get("type", "object" if "properties" in schema else "any")
    return kind if isinstance(kind, str) else "|".join(kind)
