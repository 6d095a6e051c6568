"""Validation before any run: structure, config, and every reference's scope and field.

Each error names the block and the field. The same pass lists, for every block, the
references in scope there; the editor's reference picker shows exactly that list. Warnings
do not stop a save or a run: they name a whole list that grows with the batch (a loop's
results, the list a loop runs over) placed in text sent to a size-limited service.

Linear in the size of the graph: predecessors are computed once per level, and what is
upstream of a block is a bitset built from its parents' bitsets (each level's blocks in
topological order), so no block's scope is ever copied out as a map. Names are looked up
on demand; the picker's lists are built only for the blocks someone asks about.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from engine.core.expression_names import block_names_read
from engine.core.graph import LOOP_TYPE, NAME_PATTERN, RESPONSE_TYPE, Block, Graph
from engine.core.growth import growing_aggregations
from engine.core.limits import GraphLimits, GraphTooLarge
from engine.core.refs import Reference, find_references, iter_strings, whole_reference
from engine.core.schemas import JsonSchema, array, field_error, list_fields, obj, schema_at
from engine.core.spec import BlockType, Registry

RESERVED_NAMES = {"env", "loop"}
# Blocks that start a run: no inputs, never inside a loop, one per workflow.
TRIGGER_TYPES = frozenset({"webhook", "schedule"})
# The field of a problem with a trigger block as such (one too many): the block's role.
TRIGGER_FIELD = "trigger"
# Run rows store block ids in varchar(100) columns (StepRun.block_id, ItemRun.loop_block).
MAX_ID_LENGTH = 100
MAX_NAME_LENGTH = 64
# The stored form's version: a stored result in another format is worked out again.
STORED_FORMAT = 2
# A loop's per-item lists in its output: each grows with the batch.
GROWING_LOOP_OUTPUTS = ("results", "failed")
# How many of a loop's aggregations a warning suggests by name.
SUGGESTED_AGGREGATIONS = 4
# How many of a loop's blocks a warning on a name it does not hold lists.
LISTED_BLOCKS = 8


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    block_id: str | None
    block_name: str | None
    field: str
    message: str
    # Set on `<env.NAME>` references: an error only while NAME is not one of the owner's
    # secrets, so a stored result stays right when secrets are added or removed.
    secret: str | None = None

    def __str__(self) -> str:
        where = f"block '{self.block_name}'" if self.block_name else "workflow"
        return f"{where}, field '{self.field}': {self.message}"

    def as_dict(self) -> dict[str, Any]:
        answer = {
            "block_id": self.block_id,
            "block": self.block_name,
            "field": self.field,
            "message": self.message,
        }
        if self.secret is not None:
            # The missing secret's name (never a value): the editor links to adding it.
            answer["secret"] = self.secret
        return answer


@dataclass
class ValidationResult:
    errors: list[ValidationIssue] = field(default_factory=list)
    scopes: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    outputs: dict[str, JsonSchema] = field(default_factory=dict)
    # Every issue, including the secret-dependent ones that are not errors right now.
    issues: list[ValidationIssue] = field(default_factory=list)
    # Advice that blocks neither a save nor a run (a list that grows with the batch in a
    # prompt or a Slack text).
    warnings: list[ValidationIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @classmethod
    def failed(cls, issue: ValidationIssue) -> ValidationResult:
        return cls(errors=[issue], issues=[issue])

    def stored(self) -> dict[str, Any]:
        """The secret-independent form kept with a workflow version."""
        return {
            "format": STORED_FORMAT,
            "issues": [{**i.as_dict(), "secret": i.secret} for i in self.issues],
            "warnings": [w.as_dict() for w in self.warnings],
        }


def stored_errors(stored: Any, env_names: Iterable[str]) -> list[ValidationIssue] | None:
    """The errors a stored result means for these secrets; None when it cannot be used."""
    if not isinstance(stored, Mapping) or stored.get("format") != STORED_FORMAT:
        return None
    names = set(env_names)
    issues = [
        ValidationIssue(i["block_id"], i["block"], i["field"], i["message"], i.get("secret"))
        for i in stored.get("issues", [])
    ]
    return [i for i in issues if i.secret is None or i.secret not in names]


def stored_warnings(stored: Any) -> list[ValidationIssue]:
    """The warnings of a stored result (none when it is in an older format)."""
    if not isinstance(stored, Mapping) or stored.get("format") != STORED_FORMAT:
        return []
    return [
        ValidationIssue(w["block_id"], w["block"], w["field"], w["message"])
        for w in stored.get("warnings", [])
    ]


def validate(
    graph: Graph,
    registry: Registry,
    env_names: Iterable[str] = (),
    limits: GraphLimits | None = None,
) -> ValidationResult:
    return _Validator(graph, registry, set(env_names), limits or GraphLimits()).run()


class _Validator:
    def __init__(
        self, graph: Graph, registry: Registry, env_names: set[str], limits: GraphLimits
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.env_names = env_names
        self.limits = limits
        self.result = ValidationResult()
        self.structure_ok = True
        # Blocks whose config fails its JSON schema: their check() and references are
        # skipped (both assume the schema's shapes) and their outputs are treated as unknown.
        self.bad_config: set[str] = set()
        self.item_memo: dict[str, JsonSchema] = {}
        # Upstream as bitsets: each level's blocks get a bit, in topological order.
        self.level_order: dict[str | None, list[str]] = {}
        self.bit: dict[str, int] = {}
        self.upstream_bits: dict[str, int] = {}
        self.entries_memo: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # What each loop runs over, by what its items reference names (see growing_list).
        self.items_sources: dict[tuple[str, str], list[tuple[tuple[str, ...], Block]]] | None
        self.items_sources = None
        # Of a block whose config fails its schema in some fields: the other fields.
        self.partial_configs: dict[str, dict[str, Any]] = {}
        # Each loop's aggregations that grow with the batch (engine/core/growth.py).
        self.growing: dict[str, set[str]] = {}

    def error(
        self, block: Block | None, field_name: str, message: str, secret: str | None = None
    ) -> None:
        self.result.issues.append(
            ValidationIssue(
                block.id if block else None,
                block.name if block else None,
                field_name,
                message,
                secret,
            )
        )

    def run(self) -> ValidationResult:
        if self.check_size():
            self.check_blocks()
            self.check_parents()
            self.check_edges()
            if self.structure_ok:
                self.check_cycles()
            if self.structure_ok:
                self.index_upstream()
                validators: dict[str, jsonschema.Draft202012Validator] = {}
                for block in self.graph.blocks:
                    self.check_config(block, validators)
                for block in self.graph.blocks:
                    self.check_references(block)
                    if block.type == LOOP_TYPE and block.id not in self.bad_config:
                        self.check_aggregation_names(block)
                        self.check_variable_clash(block)
                self.result.scopes = ScopeLists(self)
        names = self.env_names
        self.result.errors = [
            i for i in self.result.issues if i.secret is None or i.secret not in names
        ]
        return self.result

    # --- structure -----------------------------------------------------------------------

    def check_size(self) -> bool:
        """The block and edge limits, before any other work (the API checks them earlier
        still, on the raw JSON; this covers every other caller)."""
        limits = self.limits
        try:
            if len(self.graph.blocks) > limits.max_blocks:
                raise GraphTooLarge(
                    "KLYNTOS_MAX_BLOCKS", limits.max_blocks, len(self.graph.blocks), "blocks"
                )
            if len(self.graph.edges) > limits.max_edges:
                raise GraphTooLarge(
                    "KLYNTOS_MAX_EDGES", limits.max_edges, len(self.graph.edges), "edges"
                )
        except GraphTooLarge as exc:
            self.error(None, "graph", str(exc))
            return False
        return True

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
        # On the extra trigger itself, field "trigger" (no config field is wrong: the block
        # is); the editor's problem link selects the block and shows the line.
        triggers = [b for b in self.graph.blocks if b.type in TRIGGER_TYPES]
        for kind in ("webhook", "schedule"):
            same = [b for b in triggers if b.type == kind]
            for extra in same[1:]:
                self.error(
                    extra,
                    TRIGGER_FIELD,
                    f"a workflow has one trigger; '{same[0].name}' is its {kind} already:"
                    f" remove '{extra.name}'",
                )
        schedules = [b for b in triggers if b.type == "schedule"]
        if schedules and len(schedules) < len(triggers):
            self.error(
                schedules[0],
                TRIGGER_FIELD,
                "a workflow has one trigger: a webhook or a schedule, not both",
            )
        for trigger in triggers:
            if trigger.parent is not None:
                self.error(trigger, "parent", "a trigger cannot sit inside a loop")
        # The run's one answer to a waiting caller: it must run once, at the top level.
        responses = [b for b in self.graph.blocks if b.type == RESPONSE_TYPE]
        for extra in responses[1:]:
            self.error(extra, "type", "a workflow has at most one Response block")
        for response in responses:
            if response.parent is not None:
                self.error(
                    response,
                    "parent",
                    "a Response block cannot sit inside a loop (it answers once)",
                )

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
        depth = self.loop_depths()
        if self.structure_ok:
            self.check_loop_depth(depth)

    def loop_depths(self) -> dict[str, int]:
        """Each block's number of enclosing loops (itself included when a loop), in one
        memoised pass; a circle of parents is an error on each block that reaches it."""
        by_id = self.graph.by_id
        depth: dict[str, int] = {}
        circular: set[str] = set()
        for block in self.graph.blocks:
            path: list[str] = []
            on_path: set[str] = set()
            current: str | None = block.id
            while current is not None and current not in depth and current not in circular:
                if current in on_path:
                    circular.update(path)
                    break
                path.append(current)
                on_path.add(current)
                current = by_id[current].parent
            if circular.intersection(path) or current in circular:
                circular.update(path)
                self.error(block, "parent", "loops contain each other in a circle")
                self.structure_ok = False
                continue
            below = depth[current] if current is not None else 0
            for block_id in reversed(path):
                below += 1 if by_id[block_id].is_loop else 0
                depth[block_id] = below
        return depth

    def check_loop_depth(self, depth: dict[str, int]) -> None:
        most = self.limits.max_loop_depth
        for block in self.graph.blocks:
            if block.is_loop and depth[block.id] > most:
                self.error(
                    block,
                    "parent",
                    f"loops nest at most {most} deep; this one is {depth[block.id]} deep",
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
            if target.type in TRIGGER_TYPES:  # checked first: same-level edges skip the rest
                self.error(target, "edges", "a trigger cannot have inputs")
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

    def check_cycles(self) -> None:
        parents = {None, *(b.id for b in self.graph.blocks if b.is_loop)}
        for parent in parents:
            sorter = graphlib.TopologicalSorter(self.graph.predecessors(parent))
            try:
                self.level_order[parent] = list(sorter.static_order())
            except graphlib.CycleError as exc:
                cycle = [self.graph.block(i).name for i in exc.args[1]]
                first = self.graph.block(exc.args[1][0])
                self.error(first, "edges", "cycle: " + " → ".join(cycle))
                self.structure_ok = False

    def index_upstream(self) -> None:
        """Each block's upstream siblings as a bitset: its parents' bitsets OR'd, plus their
        own bits. Built once, in topological order, so every block reuses its parents'."""
        for parent, order in self.level_order.items():
            preds = self.graph.predecessors(parent)
            for position, block_id in enumerate(order):
                self.bit[block_id] = 1 << position
            for block_id in order:
                bits = 0
                for pred in preds.get(block_id, ()):
                    bits |= self.upstream_bits[pred] | self.bit[pred]
                self.upstream_bits[block_id] = bits

    def is_upstream(self, source: Block, of: Block) -> bool:
        return (
            source.parent == of.parent
            and source.id != of.id
            and bool(self.upstream_bits.get(of.id, 0) & self.bit.get(source.id, 0))
        )

    def upstream_blocks(self, block: Block) -> Iterator[Block]:
        bits, order = self.upstream_bits.get(block.id, 0), self.level_order.get(block.parent, [])
        while bits:
            low = bits & -bits
            yield self.graph.block(order[low.bit_length() - 1])
            bits ^= low

    # --- config --------------------------------------------------------------------------

    def check_config(
        self, block: Block, validators: dict[str, jsonschema.Draft202012Validator]
    ) -> None:
        spec = self.registry[block.type]
        if block.type not in validators:
            validators[block.type] = jsonschema.Draft202012Validator(spec.config_schema)
        validator = validators[block.type]
        errors = sorted(validator.iter_errors(dict(block.config)), key=lambda e: list(e.path))
        for err in errors:
            path = ".".join(str(p) for p in err.absolute_path)
            if not path and err.validator == "required":
                path = str(err.message).split("'")[1] if "'" in err.message else "config"
            self.error(block, path or "config", err.message)
        if errors:
            self.bad_config.add(block.id)
            self.check_the_rest(block, spec, errors)
            return
        run_if = block.config.get("run_if")
        if isinstance(run_if, str) and whole_reference(run_if) is None:
            self.error(
                block,
                "run_if",
                "run_if must be one reference (e.g. <loop.failed>): the block runs only when "
                "its value is not empty",
            )
        for field_name, message in spec.check(block.config):
            self.error(block, field_name, message)
        for field_name, message in spec.check_limits(block.config, self.limits):
            self.error(block, field_name, message)
        for field_name, message in spec.advice(block.config):
            self.warn(block, field_name, message)

    def check_the_rest(
        self, block: Block, spec: BlockType, errors: list[jsonschema.ValidationError]
    ) -> None:
        """A config that fails its schema in some fields: the others are still checked
        (`check()`, their references), so one save lists every problem rather than the next
        ones only once these are fixed. Not when the config as a whole is wrong (a required
        field missing, not an object): `check()` may rely on the shapes the schema gives."""
        bad = {str(err.absolute_path[0]) if err.absolute_path else "" for err in errors}
        if "" in bad:
            return
        rest = {k: v for k, v in block.config.items() if k not in bad}
        self.partial_configs[block.id] = rest
        try:
            problems = list(spec.check(rest))
        except Exception:  # noqa: BLE001 -- a check that needs the fields left out
            return
        for field_name, message in problems:
            if field_name.split(".", 1)[0] not in bad:
                self.error(block, field_name, message)

    # --- references ----------------------------------------------------------------------

    def check_references(self, block: Block) -> None:
        spec = self.registry[block.type]
        config = block.config
        if block.id in self.bad_config:
            if block.id not in self.partial_configs:
                return
            config = self.partial_configs[block.id]  # the fields that passed the schema
        for key, value in config.items():
            if key in spec.expression_fields:
                continue
            size_limited = key in spec.size_limited_fields
            for path, text in iter_strings(value, (key,)):
                for ref in find_references(text):
                    self.check_reference(block, ".".join(path), ref.text, ref.root, ref.path)
                    if size_limited:
                        self.check_growth(block, ".".join(path), ref)

    def check_reference(
        self, block: Block, where: str, text: str, root: str, path: tuple[str, ...]
    ) -> None:
        if root == "env":
            if len(path) != 1:
                self.error(block, where, f"{text}: write <env.NAME>")
            else:
                problem = f"'{path[0]}' is not one of your secrets nor an allow-listed variable"
                self.error(block, where, f"{text}: {problem}", secret=path[0])
            return
        schema = self.lookup(block, root)
        if schema is None:
            if self.graph.by_name(root) is None:
                problem = f"no block or variable named '{root}'"
            else:
                problem = (
                    f"'{root}' is not upstream of this block "
                    "(connect it, or move it out of its loop)"
                )
            self.error(block, where, f"{text}: {problem}")
            return
        missing = field_error(schema, path, root)
        if missing:
            self.error(block, where, f"{text}: {missing}")

    def lookup(self, block: Block, name: str) -> JsonSchema | None:
        """The schema `name` has at `block` (see `find`)."""
        found = self.find(block, name)
        if found is None:
            return None
        kind, source = found
        if kind == "output":
            return self.output_schema(source)
        return self.item_schema(source) if kind == "item" else self.iteration_schema(source)

    def find(self, block: Block, name: str) -> tuple[str, Block] | None:
        """What `name` stands for at `block`: ("output", an upstream sibling), else, loop by
        loop outwards, what that loop's level makes visible — ("output", a block upstream of
        the loop), ("item", the loop) or ("iteration", the loop); inner names shadow outer."""
        target = self.graph.by_name(name)
        if target is not None and self.is_upstream(target, block):
            return "output", target
        innermost = True
        for loop in self.graph.ancestors(block.id):
            if target is not None and self.is_upstream(target, loop):
                return "output", target
            variable = str(loop.config.get("variable") or "item")
            if name == "loop" and innermost:
                return "iteration", loop
            if name == variable:
                return "item", loop
            if name == loop.name:
                return "iteration", loop
            innermost = False
        return None

    # --- lists that grow with the batch ----------------------------------------------------

    def check_growth(self, block: Block, where: str, ref: Reference) -> None:
        """Warns when `ref`, in text bound for a size-limited service, is a whole list that
        grows with the batch: a loop's results (or failures, or its whole output), or the
        list a loop runs over (or what holds it)."""
        if ref.root == "env":
            return
        found = self.find(block, ref.root)
        if found is None:
            return
        kind, source = found
        if kind == "output" and source.is_loop:
            if not ref.path or (len(ref.path) == 1 and ref.path[0] in GROWING_LOOP_OUTPUTS):
                self.warn(
                    block,
                    where,
                    f"{ref.text} holds a list with every item of loop '{source.name}', which "
                    f"grows with the batch: past a few hundred items the prompt or message is "
                    f"too large (refused or cut). {self.instead(source)}",
                )
            elif ref.path and ref.path[0] in self.growing_of(source):
                self.warn(
                    block,
                    where,
                    f"{ref.text}: aggregation '{ref.path[0]}' of loop '{source.name}' has an "
                    f"entry for every item, so it grows with the batch: past a few hundred "
                    f"items the prompt or message is too large (refused or cut). Bound it "
                    f"(a slice such as [:50] after a sort, a count, a sum) for text like this.",
                )
            return
        for path, loop in self.items_of().get((kind, source.id), []):
            if path[: len(ref.path)] == ref.path:
                self.warn(
                    block,
                    where,
                    f"{ref.text} holds the whole list loop '{loop.name}' runs over, which "
                    f"grows with the batch: past a few hundred items the prompt or message is "
                    f"too large (refused or cut). {self.instead(loop)}",
                )
                return

    def growing_of(self, loop: Block) -> set[str]:
        """`loop`'s aggregations that grow with the batch, worked out once."""
        if loop.id not in self.growing:
            aggregations = loop.config.get("aggregations")
            self.growing[loop.id] = (
                growing_aggregations(aggregations) if isinstance(aggregations, Mapping) else set()
            )
        return self.growing[loop.id]

    def instead(self, loop: Block) -> str:
        aggregations = loop.config.get("aggregations")
        names = (
            list(aggregations)[:SUGGESTED_AGGREGATIONS] if isinstance(aggregations, Mapping) else []
        )
        counts = f"<{loop.name}.count>, <{loop.name}.succeeded>"
        if names:
            suggested = ", ".join(f"<{loop.name}.{name}>" for name in names)
            return f"Use the loop's aggregations after it instead: {suggested}, {counts}."
        return (
            f"Add aggregations to loop '{loop.name}' (e.g. the top 5, counts per value) and "
            f"use those after it instead, or {counts}."
        )

    def items_of(self) -> dict[tuple[str, str], list[tuple[tuple[str, ...], Block]]]:
        """Each loop's items reference by what its root stands for at the loop, built once."""
        if self.items_sources is None:
            self.items_sources = {}
            for loop in self.graph.blocks:
                items = loop.config.get("items") if loop.is_loop else None
                ref = whole_reference(items) if isinstance(items, str) else None
                found = self.find(loop, ref.root) if ref is not None else None
                if ref is not None and found is not None:
                    key = (found[0], found[1].id)
                    self.items_sources.setdefault(key, []).append((ref.path, loop))
        return self.items_sources

    def check_aggregation_names(self, loop: Block) -> None:
        """Warn on block names an aggregation reads (`outputs.<name>`, `block == '<name>'`)
        that the loop does not hold: left behind by a rename or a delete, they read null or
        never match, and nothing else would say so before the batch has run."""
        aggregations = loop.config.get("aggregations")
        if not isinstance(aggregations, Mapping) or not aggregations:
            return
        held = {block.name for block in self.graph.descendants(loop.id)}
        for name, expression in aggregations.items():
            for how, read in block_names_read(str(expression)):
                if read in held:
                    continue
                listed = ", ".join(sorted(held)[:LISTED_BLOCKS]) or "none"
                self.warn(
                    loop,
                    f"aggregations.{name}",
                    f"reads {how}, but loop '{loop.name}' has no block '{read}' (its blocks: "
                    f"{listed}); renamed or deleted? It reads null (or never matches) for "
                    "every item",
                )

    def check_variable_clash(self, loop: Block) -> None:
        """A block named like a loop's variable, inside the loop or upstream of it, takes the
        name's place: `<lead.name>` in the body would read that block, not the item."""
        variable = str(loop.config.get("variable") or "item")
        inside = {block.id for block in self.graph.descendants(loop.id)}
        for block in self.graph.blocks:
            if block.name != variable:
                continue
            if block.id == loop.id or block.id in inside or self.is_upstream(block, loop):
                self.error(
                    block,
                    "name",
                    f"'{variable}' is the variable of loop '{loop.name}' (its current item): "
                    f"name this block otherwise, or <{variable}.…> in the loop reads the "
                    "block instead of the item",
                )

    def warn(self, block: Block, field_name: str, message: str) -> None:
        warning = ValidationIssue(block.id, block.name, field_name, message)
        if warning not in self.result.warnings:  # the same reference twice in one field
            self.result.warnings.append(warning)

    def iteration_schema(self, loop: Block) -> JsonSchema:
        return obj({"index": {"type": "integer"}, "item": self.item_schema(loop)})

    def scope_entries(self, block: Block) -> list[dict[str, Any]]:
        """The picker's list for `block`: every name visible there, with its fields."""
        seen: set[str] = set()
        entries: list[dict[str, Any]] = []

        def add(name: str, key: str, schema: JsonSchema) -> None:
            if name in seen:
                return
            seen.add(name)
            memo_key = (key, name)
            if memo_key not in self.entries_memo:
                self.entries_memo[memo_key] = list_fields(schema, name)
            entries.extend(self.entries_memo[memo_key])

        for source in self.upstream_blocks(block):
            add(source.name, source.id, self.output_schema(source))
        innermost = True
        for loop in self.graph.ancestors(block.id):
            for source in self.upstream_blocks(loop):
                add(source.name, source.id, self.output_schema(source))
            if innermost:
                add("loop", loop.id + "/iteration", self.iteration_schema(loop))
                innermost = False
            add(
                str(loop.config.get("variable") or "item"),
                loop.id + "/item",
                self.item_schema(loop),
            )
            add(loop.name, loop.id + "/iteration", self.iteration_schema(loop))
        entries.extend({"ref": f"env.{name}", "type": "secret"} for name in sorted(self.env_names))
        return entries

    def item_schema(self, loop: Block) -> JsonSchema:
        if loop.id not in self.item_memo:
            self.item_memo[loop.id] = {}  # a loop whose items name itself: unknown
            self.item_memo[loop.id] = self._item_schema(loop)
        return self.item_memo[loop.id]

    def _item_schema(self, loop: Block) -> JsonSchema:
        items = loop.config.get("items")
        if isinstance(items, list):
            return {}
        ref = whole_reference(items) if isinstance(items, str) else None
        if ref is None or ref.root == "env":
            return {}
        source = self.lookup(loop, ref.root)
        if source is None:
            return {}
        found = schema_at(source, ref.path)
        item = found.get("items")
        return dict(item) if found.get("type") == "array" and isinstance(item, Mapping) else {}

    def output_schema(self, block: Block) -> JsonSchema:
        if block.id in self.result.outputs:
            return self.result.outputs[block.id]
        if block.is_loop and (block.id not in self.bad_config or block.id in self.partial_configs):
            # A loop's output does not hang on its settings (a bad max_concurrent): its
            # results, counts and aggregation names are known all the same.
            schema: JsonSchema = self.loop_output_schema(block)
        elif block.id in self.bad_config:
            schema = {}  # unknown: references to it are not checked
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
            "not_started": {"type": "integer"},
            "not_started_reason": {"type": "string"},
        }
        if isinstance(aggregations, Mapping):
            properties.update({str(name): {} for name in aggregations})
        return obj(properties)


class ScopeLists(Mapping[str, list[dict[str, Any]]]):
    """Block id → the references in scope there, each list built when asked for: all of
    them together grow with the square of a chain's length, so nothing builds them all
    unless a caller iterates (the validate endpoint bounds how many it answers)."""

    def __init__(self, validator: _Validator) -> None:
        self._validator = validator
        self._ids = [b.id for b in validator.graph.blocks]

    def __getitem__(self, block_id: str) -> list[dict[str, Any]]:
        block = self._validator.graph.by_id.get(block_id)
        if block is None:
            raise KeyError(block_id)
        return self._validator.scope_entries(block)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)
