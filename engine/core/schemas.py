"""Output schemas as JSON Schema, and walking a reference path through them.

Schemas here may come straight from an author (a webhook's body schema, an agent's response
format), so every walker accepts anything JSON can hold: a `properties` that is not an object
or a `type` that is not a string makes that part of the schema open (unknown), never a crash.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from typing import Any

import jsonschema
import referencing.exceptions
from jsonschema_specifications import REGISTRY as SPECIFICATIONS  # type: ignore[import-untyped]
from referencing.jsonschema import DRAFT202012

JsonSchema = dict[str, Any]
SCALARS = {"string", "integer", "number", "boolean", "null"}

# What jsonschema raises when a `$ref` cannot be resolved while validating an instance.
Unresolvable = referencing.exceptions.Unresolvable


def obj(properties: Mapping[str, JsonSchema], *, open_: bool = False) -> JsonSchema:
    schema: JsonSchema = {"type": "object", "properties": dict(properties)}
    if open_:
        schema["additionalProperties"] = True
    return schema


def array(items: JsonSchema) -> JsonSchema:
    return {"type": "array", "items": items}


def properties_of(schema: Any) -> Mapping[str, Any]:
    """The `properties` mapping of a schema, or an empty one when it is not a mapping."""
    if not isinstance(schema, Mapping):
        return {}
    properties = schema.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def with_defaults(schema: Any, value: Any) -> Any:
    """`value` with each missing property that its schema gives a `default` filled in, in
    objects and in the items of arrays, at any depth (`properties` and `items` only: no
    `$ref`, `allOf` or `anyOf`). A field a schema marks optional with a default can then be
    referenced whether a body has it or not. `value` is left as it is: what changes is
    copied, what does not is shared."""
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict):
        properties = properties_of(schema)
        if not properties:
            return value
        changed: dict[str, Any] | None = None
        for name, field in properties.items():
            if not isinstance(field, Mapping):
                continue
            if name in value:
                filled = with_defaults(field, value[name])
            elif "default" in field:
                filled = copy.deepcopy(field["default"])
            else:
                continue
            if name not in value or filled is not value[name]:
                changed = changed if changed is not None else dict(value)
                changed[name] = filled
        return value if changed is None else changed
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping) and _fills(items):
        filled_items = [with_defaults(items, item) for item in value]
        same = all(a is b for a, b in zip(filled_items, value, strict=True))
        return value if same else filled_items
    return value


def _fills(schema: Any) -> bool:
    """Whether a `default` stands anywhere under `schema`, so that `with_defaults` can change
    something (a list of 100,000 items whose schema has none is not walked)."""
    if isinstance(schema, Mapping):
        return "default" in schema or any(_fills(part) for part in schema.values())
    if isinstance(schema, list):
        return any(_fills(part) for part in schema)
    return False


def _kind(schema: Mapping[str, Any]) -> str | list[str] | None:
    """The schema's `type` when it is one we can reason about, else None (unknown)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list) and kind and all(isinstance(k, str) for k in kind):
        return kind
    return None


def is_open(schema: Any) -> bool:
    """An open schema accepts any field path below it (e.g. an HTTP response body)."""
    if not isinstance(schema, Mapping):
        return True  # `true`, `false` or garbage: nothing we can check a path against
    return _kind(schema) is None and "properties" not in schema and "items" not in schema


def field_error(schema: Any, path: tuple[str, ...], root: str) -> str | None:
    """Why `root.path` does not exist in `schema`, or None when it may exist."""
    current: Any = schema
    walked = [root]
    for segment in path:
        where = ".".join(walked)
        if is_open(current):
            return None
        kind = _kind(current)
        if "properties" in current or kind == "object":
            if "properties" in current and not isinstance(current["properties"], Mapping):
                return None  # a malformed `properties` says nothing about the fields
            properties = properties_of(current)
            if segment in properties:
                current = properties[segment]
            elif current.get("additionalProperties") or "properties" not in current:
                return None
            else:
                fields = ", ".join(sorted(str(name) for name in properties)) or "none"
                return f"'{where}' has no field '{segment}' (fields: {fields})"
        elif kind == "array" or "items" in current:
            if not segment.isdigit():
                return f"'{where}' is a list; use an index, not '{segment}'"
            current = current.get("items", {})
        elif isinstance(kind, list) or kind in SCALARS:
            return f"'{where}' is {kind}, it has no field '{segment}'"
        else:
            return None
        walked.append(segment)
    return None


def schema_at(schema: Any, path: tuple[str, ...]) -> JsonSchema:
    """The schema found at `path`, or an open schema when it cannot be known."""
    current: Any = schema
    for segment in path:
        properties = properties_of(current)
        if segment in properties:
            current = properties[segment]
        elif isinstance(current, Mapping) and "items" in current and segment.isdigit():
            current = current["items"]
        else:
            return {}
    return dict(current) if isinstance(current, Mapping) else {}


def list_fields(schema: Any, prefix: str, depth: int = 3) -> list[dict[str, Any]]:
    """Flatten a schema into reference entries for the editor's picker."""
    entries = [{"ref": prefix, "type": _type_name(schema)}]
    if depth <= 0:
        return entries
    for name, sub in properties_of(schema).items():
        entries.extend(list_fields(sub, f"{prefix}.{name}", depth - 1))
    return entries


def _type_name(schema: Any) -> str:
    if is_open(schema):
        return "any"
    kind = _kind(schema)
    if kind is None:
        return "object" if isinstance(schema.get("properties"), Mapping) else "any"
    return kind if isinstance(kind, str) else "|".join(kind)


# --- author-supplied JSON schemas ---------------------------------------------------------


def schema_validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator that resolves `$ref`s inside the schema (and the metaschemas) only.

    jsonschema's default registry fetches unknown URLs over HTTP; an author's `$ref` must not
    make the server request an address of their choosing.
    """
    return jsonschema.Draft202012Validator(schema, registry=SPECIFICATIONS)


def unresolvable_refs(schema: Mapping[str, Any]) -> list[str]:
    """Every `$ref` / `$dynamicRef` in `schema` that points nowhere (or outside it)."""
    root = DRAFT202012.create_resource(schema)
    problems: list[str] = []
    stack = [(root, SPECIFICATIONS.resolver_with_root(root))]
    while stack:
        resource, resolver = stack.pop()
        contents = resource.contents
        if isinstance(contents, Mapping):
            for keyword in ("$ref", "$dynamicRef"):
                ref = contents.get(keyword)
                if not isinstance(ref, str):
                    continue
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    problems.append(ref)
        # subresources() yields only schema positions (properties, items, $defs, ...), so
        # a `$ref` key inside `const` or `enum` data is not mistaken for a reference.
        for sub in resource.subresources():
            stack.append((sub, resolver.in_subresource(sub)))
    return problems


def schema_problems(schema: Any) -> list[str]:
    """Why an author's JSON schema cannot be used: not a schema, or an unresolvable `$ref`.

    Checking against the metaschema takes tens of ms, and a webhook checks its body schema on
    every run (a part of the run's fixed cost): the answer is remembered per schema text."""
    if not isinstance(schema, Mapping):
        return ["must be a JSON schema object"]
    try:
        text = json.dumps(schema)
    except (TypeError, ValueError):  # not JSON (a caller's own object): checked as it is
        return _schema_problems(schema)
    return list(_schema_problems_of_text(text))


@functools.lru_cache(maxsize=256)
def _schema_problems_of_text(text: str) -> tuple[str, ...]:
    return tuple(_schema_problems(json.loads(text)))


def _schema_problems(schema: Mapping[str, Any]) -> list[str]:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"not a valid JSON schema: {exc.message}"]
    return [
        f"$ref '{ref}' cannot be resolved (only references inside this schema work)"
        for ref in unresolvable_refs(schema)
    ]
