"""Validation before any run: structure, config, and every reference's scope and field.

Each error names the block and the field. The same pass lists, for every block, the
references in scope there; the editor's reference picker shows exactly that list.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from engine.core.graph import LOOP_TYPE, NAME_PATTERN, Block, Graph
from engine.core.refs import find_references, iter_strings, whole_reference
from engine.core.schemas import JsonSchema, array, field_error, list_fields, obj, schema_at
from engine.core.spec import Registry

RESERVED_NAMES = {"env", "loop"}
# Run rows store block ids in varchar(100) columns (StepRun.block_id, ItemRun.loop_block);
# item keys chain loop names and indexes into varchar(500): at most 5 loops of 64-character
# names fit. Each loop level also multiplies the work of a run, so deeper is refused.
MAX_ID_LENGTH = 100
MAX_NAME_LENGTH = 64
MAX_LOOP_DEPTH = 5


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    block_id: str | None
    block_name: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"block '{self.block_name}'" if self.block_name else "workflow"
        return f"{where}, field '{self.field}': {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "block_id": self.block_id,
            "block": self.block_name,
            "field": self.field,
            "message": self.message,
        }


@dataclass
class ValidationResult:
    errors: list[ValidationIssue] = field(default_factory=list)
    scopes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    outputs: dict[str, JsonSchema] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(graph: Graph, registry: Registry, env_names: Iterable[str] = ()) -> ValidationResult:
    return _Validator(graph, registry, set(env_names)).run()


class _Validator:
    def __init__(self, graph: Graph, registry: Registry, env_names: set[str]) -> None:
        self.graph = graph
        self.registry = registry
        self.env_names = env_names
        self.result = ValidationResult()
        self.structure_ok = True
        # Blocks whose config fails its JSON schema: their check() and references are
        # skipped (both assume the schema's shapes) and their outputs are treated as unknown.
        self.bad_config: set[str] = set()
        # Per-block memos: without them every loop level recomputes all of its ancestors'
        # scopes, so validation time doubles with each level of nesting.
        self.scope_memo: dict[str, dict[str, JsonSchema]] = {}
        self.item_memo: dict[str, JsonSchema] = {}

    def error(self, block: Block | None, field_name: str, message: str) -> None:
        self.result.errors.append(
            ValidationIssue(
                block.id if block else None, block.name if block else None, field_name, message
            )
        )

    def run(self) -> ValidationResult:
        self.check_blocks()
        self.check_parents()
        self.check_edges()
        if self.structure_ok:
            self.check_cycles()
        if self.structure_ok:
            for block in self.graph.blocks:
                self.check_config(block)
            for block in self.graph.blocks:
                self.check_references(block)
        return self.result

    # --- structure -----------------------------------------------------------------------

    def check_blocks(self) -> None:
        seen_ids: set[str] = set()
        seen_names: dict[str, Block] = {}
        for block in self.graph.blocks:
            if block.id in seen_ids:
                self.error(block, "id", f"duplicate block id '{block.id}'")
                self.structure_ok = False
            seen_ids.add(block.id)
            if len(block.id) > MAX_ID_LENGTH:
                self.error(block, "id", f"a block id is at most {MAX_ID_LENGTH} characters")
            if block.type not in self.registry:
                self.error(block, "type", f"unknown block type '{block.type}'")
                self.structure_ok = False
            if not NAME_PATTERN.fullmatch(block.name):
                self.error(
                    block, "name", "a name is letters, digits and _ and starts with a letter"
                )
            elif len(block.name) > MAX_NAME_LENGTH:
                self.error(block, "name", f"a name is at most {MAX_NAME_LENGTH} characters")
            elif block.name == "env":
                self.error(block, "name", "'env' is reserved for secrets")
            elif block.name in seen_names:
                self.error(block, "name", f"duplicate name '{block.name}'")
            seen_names.setdefault(block.name, block)
        triggers = [b for b in self.graph.blocks if b.type == "webhook"]
        for extra in triggers[1:]:
            self.error(extra, "type", "a workflow has at most one webhook trigger")
        for trigger in triggers:
            if trigger.parent is not None:
                self.error(trigger, "parent", "a trigger cannot sit inside a loop")

    def check_parents(self) -> None:
        for block in self.graph.blocks:
            if block.parent is None:
                continue
            parent = self.graph.by_id.get(block.parent)
            if parent is None:
                self.error(block, "parent", f"parent '{block.parent}' does not exist")
                self.structure_ok = False
            elif parent.type != LOOP_TYPE:
                self.error(block, "parent", f"parent '{parent.name}' is not a loop")
                self.structure_ok = False
        if not self.structure_ok:
            return
        for block in self.graph.blocks:
            chain, ancestor = {block.id}, block.parent
            while ancestor is not None:
                if ancestor in chain:
                    self.error(block, "parent", "loops contain each other in a circle")
                    self.structure_ok = False
                    break
                chain.add(ancestor)
                ancestor = self.graph.by_id[ancestor].parent
        if self.structure_ok:
            self.check_loop_depth()

    def check_loop_depth(self) -> None:
        for block in self.graph.blocks:
            if block.type != LOOP_TYPE:
                continue
            depth = len(self.graph.ancestors(block.id)) + 1
            if depth > MAX_LOOP_DEPTH:
                self.error(
                    block,
                    "parent",
                    f"loops nest at most {MAX_LOOP_DEPTH} deep; this one is {depth} deep",
                )

    def check_edges(self) -> None:
        by_id = self.graph.by_id
        for edge in self.graph.edges:
            source, target = by_id.get(edge.source), by_id.get(edge.target)
            if source is None or target is None:
                missing = edge.source if source is None else edge.target
                self.error(source or target, "edges", f"edge refers to missing block '{missing}'")
                self.structure_ok = False
                continue
            if source.id == target.id:
                self.error(source, "edges", "a block cannot connect to itself")
                self.structure_ok = False
            elif source.parent == target.parent:
                continue
            elif target.parent == source.id and source.is_loop:
                continue  # a loop's start handle feeding a body block
            else:
                self.error(
                    target,
                    "edges",
                    f"edge from '{source.name}' crosses a loop boundary; connect to the loop itself",
                )
                self.structure_ok = False
            if target.type == "webhook":
                self.error(target, "edges", "a trigger cannot have inputs")

    def check_cycles(self) -> None:
        parents = {None, *(b.id for b in self.graph.blocks if b.is_loop)}
        for parent in parents:
            sorter = graphlib.TopologicalSorter(self.graph.predecessors(parent))
            try:
                sorter.prepare()
            except graphlib.CycleError as exc:
                cycle = [self.graph.block(i).name for i in exc.args[1]]
                first = self.graph.block(exc.args[1][0])
                self.error(first, "edges", "cycle: " + " → ".join(cycle))
                self.structure_ok = False

    # --- config --------------------------------------------------------------------------

    def check_config(self, block: Block) -> None:
        spec = self.registry[block.type]
        validator = jsonschema.Draft202012Validator(spec.config_schema)
        errors = sorted(validator.iter_errors(dict(block.config)), key=lambda e: list(e.path))
        for err in errors:
            path = ".".join(str(p) for p in err.absolute_path)
            if not path and err.validator == "required":
                path = str(err.message).split("'")[1] if "'" in err.message else "config"
            self.error(block, path or "config", err.message)
        if errors:
            # check() may rely on the shapes the schema guarantees; the author fixes these first.
            self.bad_config.add(block.id)
            return
        for field_name, message in spec.check(block.config):
            self.error(block, field_name, message)

    # --- references ----------------------------------------------------------------------

    def check_references(self, block: Block) -> None:
        spec = self.registry[block.type]
        scope = self.scope_of(block)
        self.result.scopes[block.id] = self.describe(scope)
        if block.id in self.bad_config:
            return
        for key, value in block.config.items():
            if key in spec.expression_fields:
                continue
            for path, text in iter_strings(value, (key,)):
                for ref in find_references(text):
                    problem = self.reference_problem(ref.root, ref.path, scope)
                    if problem:
                        self.error(block, ".".join(path), f"{ref.text}: {problem}")

    def reference_problem(
        self, root: str, path: tuple[str, ...], scope: dict[str, JsonSchema]
    ) -> str | None:
        if root == "env":
            if len(path) != 1:
                return "write <env.NAME>"
            if path[0] not in self.env_names:
                return f"'{path[0]}' is not one of your secrets nor an allow-listed variable"
            return None
        if root not in scope:
            target = self.graph.by_name(root)
            if target is None:
                return f"no block or variable named '{root}'"
            return (
                f"'{root}' is not upstream of this block (connect it, or move it out of its loop)"
            )
        return field_error(scope[root], path, root)

    def describe(self, scope: Mapping[str, JsonSchema]) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for name, schema in scope.items():
            entries.extend(list_fields(schema, name))
        entries.extend({"ref": f"env.{name}", "type": "secret"} for name in sorted(self.env_names))
        return entries

    def scope_of(self, block: Block) -> dict[str, JsonSchema]:
        """Names visible at `block`: its upstream siblings, then each enclosing loop's."""
        if block.id not in self.scope_memo:
            self.scope_memo[block.id] = self._scope_of(block)
        return self.scope_memo[block.id]

    def _scope_of(self, block: Block) -> dict[str, JsonSchema]:
        layers: list[dict[str, JsonSchema]] = [self.upstream_outputs(block)]
        innermost = True
        for loop in self.graph.ancestors(block.id):
            item = self.item_schema(loop)
            iteration = obj({"index": {"type": "integer"}, "item": item})
            layer = {loop.name: iteration, str(loop.config.get("variable") or "item"): item}
            if innermost:
                layer["loop"] = iteration
                innermost = False
            layer.update(self.upstream_outputs(loop))
            layers.append(layer)
        merged: dict[str, JsonSchema] = {}
        for layer in reversed(layers):  # inner names shadow outer ones
            merged.update(layer)
        return merged

    def upstream_outputs(self, block: Block) -> dict[str, JsonSchema]:
        ids = self.graph.upstream(block.id)
        return {self.graph.block(i).name: self.output_schema(self.graph.block(i)) for i in ids}

    def item_schema(self, loop: Block) -> JsonSchema:
        if loop.id not in self.item_memo:
            self.item_memo[loop.id] = self._item_schema(loop)
        return self.item_memo[loop.id]

    def _item_schema(self, loop: Block) -> JsonSchema:
        items = loop.config.get("items")
        if isinstance(items, list):
            return {}
        ref = whole_reference(items) if isinstance(items, str) else None
        if ref is None or ref.root == "env":
            return {}
        source = self.scope_of(loop).get(ref.root)
        if source is None:
            return {}
        found = schema_at(source, ref.path)
        item = found.get("items")
        return dict(item) if found.get("type") == "array" and isinstance(item, Mapping) else {}

    def output_schema(self, block: Block) -> JsonSchema:
        if block.id in self.result.outputs:
            return self.result.outputs[block.id]
        if block.id in self.bad_config:
            schema: JsonSchema = {}  # unknown: references to it are not checked
        elif block.is_loop:
            schema = self.loop_output_schema(block)
        else:
            schema = self.registry[block.type].output_schema(block.config)
        self.result.outputs[block.id] = schema
        return schema

    def loop_output_schema(self, loop: Block) -> JsonSchema:
        body = {child.name: self.output_schema(child) for child in self.graph.children(loop.id)}
        item = self.item_schema(loop)
        result = obj({"index": {"type": "integer"}, "item": item, "outputs": obj(body)})
        failure = obj(
            {
                "index": {"type": "integer"},
                "item": item,
                "block": {"type": ["string", "null"]},
                "error": {"type": "string"},
            }
        )
        aggregations = loop.config.get("aggregations") or {}
        properties: dict[str, JsonSchema] = {
            "results": array(result),
            "count": {"type": "integer"},
            "succeeded": {"type": "integer"},
            "failed": array(failure),
        }
        if isinstance(aggregations, Mapping):
            properties.update({str(name): {} for name in aggregations})
        return obj(properties)
