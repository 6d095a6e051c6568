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

from engine.core.bounded import json_size
from engine.core.errors import SizeLimitError

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


def with_defaults(schema: Any, value: Any, max_bytes: int | None = None) -> Any:
    """`value` with each missing property that its schema gives a `default` filled in, in
    objects and in the items of arrays, at any depth (`properties` and `items` only: no
    `$ref`, `allOf` or `anyOf`). A field a schema marks optional with a default can then be
    referenced whether a body has it or not. `value` is left as it is: what changes is
    copied, what does not is shared.

    The schema is read once into a `_Filler` that visits only the parts where a default
    stands: a webhook's 100,000 leads cost a few lookups each, not a walk of every field.
    A default that is a list or an object is copied for each value that lacks it: past
    `max_bytes` of such copies (their JSON), SizeLimitError, before memory holds them all (a
    500 kB default list filled into 100,000 leads would be 50 GB)."""
    filler = _filler(schema)
    if filler is None:
        return value
    return filler.fill(value, _Budget(max_bytes))


class _Budget:
    """The bytes of copied defaults one `with_defaults` may still make."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.left = limit or 0

    def spend(self, size: int) -> None:
        if self.limit is None:
            return
        self.left -= size
        if self.left < 0:
            raise SizeLimitError("the body with its schema's defaults filled in", self.limit)


# A default that is one of these is shared, never copied (nothing can change it).
_IMMUTABLE = (str, int, float, bool, type(None))


class _Filler:
    """What `with_defaults` does for one schema: the defaults of its own properties, the
    fillers of its properties and array items that hold one below."""

    __slots__ = ("defaults", "nested", "items")

    def __init__(
        self,
        defaults: list[tuple[str, Any, int]],
        nested: list[tuple[str, _Filler]],
        items: _Filler | None,
    ) -> None:
        self.defaults = defaults  # (name, default, bytes a copy costs: 0 when shared)
        self.nested = nested
        self.items = items

    def fill(self, value: Any, budget: _Budget) -> Any:
        if isinstance(value, dict):
            return self._fill_object(value, budget) if self.defaults or self.nested else value
        if isinstance(value, list) and self.items is not None:
            items = self.items
            filled = [items.fill(item, budget) for item in value]
            same = all(a is b for a, b in zip(filled, value, strict=True))
            return value if same else filled
        return value

    def _fill_object(self, value: dict[str, Any], budget: _Budget) -> dict[str, Any]:
        changed: dict[str, Any] | None = None
        for name, default, cost in self.defaults:
            if name not in value:
                changed = changed if changed is not None else dict(value)
                if cost:  # a list or an object: a copy of its own
                    budget.spend(cost)
                    changed[name] = copy.deepcopy(default)
                else:
                    changed[name] = default
        for name, filler in self.nested:
            if name in value:
                inner = value[name]
                filled = filler.fill(inner, budget)
                if filled is not inner:
                    changed = changed if changed is not None else dict(value)
                    changed[name] = filled
        return value if changed is None else changed


def _filler(schema: Any) -> _Filler | None:
    """`schema` as a `_Filler`, or None where no default stands under it."""
    if not isinstance(schema, Mapping):
        return None
    defaults: list[tuple[str, Any, int]] = []
    nested: list[tuple[str, _Filler]] = []
    for name, field in properties_of(schema).items():
        if not isinstance(field, Mapping):
            continue
        inner = _filler(field)
        if "default" in field:
            # Present or missing, the field's own value is filled below when it is there.
            default = field["default"]
            cost = 0 if isinstance(default, _IMMUTABLE) else json_size(default)
            defaults.append((name, default, cost))
        if inner is not None:
            nested.append((name, inner))
    items = schema.get("items")
    item_filler = _filler(items) if isinstance(items, Mapping) else None
    if not defaults and not nested and item_filler is None:
        return None
    return _Filler(defaults, nested, item_filler)


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
