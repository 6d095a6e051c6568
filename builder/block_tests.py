"""Testing one block: the values its references read, gathered from pins, a past run or the
caller, and the test itself (engine/single_step.py).

A pin is test data saved with the draft on the block it belongs to (`pin` in the block's
JSON, beside `config`): `{"output": …}` stands for the block's output in tests of the blocks
after it, and a loop's `{"item": …, "index": n}` for the item its body is tested with. Runs
never read pins (the engine ignores a block's extra keys), so a published version that
carries them runs exactly as without.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from engine.blocks import REGISTRY
from engine.core.graph import Block, Graph
from engine.core.single_step import TRIGGER_TYPES, InputName, input_names
from engine.models import ItemRun, Run, StepRun

_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\[(?P<index>\d+)\]$")


@dataclass
class Inputs:
    """The values for a test, by name, and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    # name → {kind, block (the source block's id), from: given | pin | run | missing}
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    trigger_input: Any = None
    trigger_from: str = "missing"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"inputs": self.values, "sources": self.sources}
        answer["notes"] = self.notes
        answer["trigger_input"] = self.trigger_input
        answer["trigger_from"] = self.trigger_from
        return answer


def pin_of(block: Block | None) -> Mapping[str, Any]:
    pin = block.extra.get("pin") if block is not None else None
    return pin if isinstance(pin, Mapping) else {}


def is_trigger(block: Block) -> bool:
    return block.type in TRIGGER_TYPES


def gather(
    graph: Graph,
    block: Block,
    *,
    given: Mapping[str, Any] | None = None,
    given_trigger: Any = None,
    has_trigger: bool = False,
    use_pins: bool = True,
    run: Run | None = None,
) -> Inputs:
    """Each name `block` reads, valued from (first that has it) what the caller gave, its
    pin, or `run`'s rows; names nobody has are `missing`. Names the block does not read are
    dropped from what was given."""
    given = given or {}
    inputs = Inputs()
    rows = _RunRows(run, graph, block) if run is not None else None
    for entry in input_names(graph, block, REGISTRY[block.type]):
        source = {"kind": entry.kind, "block": entry.source.id if entry.source else None}
        if entry.name in given:
            inputs.values[entry.name] = given[entry.name]
            source["from"] = "given"
        elif use_pins and (pinned := _pinned(entry)) is not _NONE:
            inputs.values[entry.name] = pinned
            source["from"] = "pin"
        elif rows is not None and (found := rows.value(entry)) is not _NONE:
            inputs.values[entry.name] = found
            source["from"] = "run"
            if _has_omitted(found):
                inputs.notes.append(
                    f"'{entry.name}' comes from the run without its per-item lists (runs keep"
                    " them as item rows): give them in the inputs if this block reads them"
                )
        else:
            source["from"] = "missing"
        inputs.sources[entry.name] = source
    if is_trigger(block):
        if has_trigger:
            inputs.trigger_input, inputs.trigger_from = given_trigger, "given"
        elif run is not None:
            inputs.trigger_input, inputs.trigger_from = run.input, "run"
    return inputs


class _NoValue:
    pass


_NONE: Any = _NoValue()


def _pinned(entry: InputName) -> Any:
    pin = pin_of(entry.source)
    if entry.kind == "output" and "output" in pin:
        return pin["output"]
    if entry.kind == "item" and "item" in pin:
        return pin["item"]
    if entry.kind == "iteration" and "item" in pin:
        return {"index": _index(pin.get("index")), "item": pin["item"]}
    return _NONE


def _index(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _has_omitted(value: Any) -> bool:
    return isinstance(value, Mapping) and any(
        isinstance(v, Mapping) and v.get("$omitted") for v in value.values()
    )


class _RunRows:
    """A past run's step outputs and loop items as the tested block saw them: within the
    item where it ran (the first that succeeded, else the first; item 0 of each loop when it
    never ran), and outside loops for the blocks there."""

    def __init__(self, run: Run, graph: Graph, block: Block) -> None:
        self.run = run
        self.graph = graph
        self.segments = self._item_key(block).split("/") if graph.ancestors(block.id) else []

    def _item_key(self, block: Block) -> str:
        steps: QuerySet[StepRun] = self.run.steps.filter(block_id=block.id)
        for chosen in (steps.filter(status="succeeded"), steps):
            item = (
                ItemRun.objects.filter(run=self.run, key__in=chosen.values("item_key"))
                .order_by("parent_key", "index")
                .first()
            )
            if item is not None:
                return item.key
        return "/".join(f"{loop.name}[0]" for loop in reversed(self.graph.ancestors(block.id)))

    def _key(self, depth: int) -> str:
        return "/".join(self.segments[:depth])

    def value(self, entry: InputName) -> Any:
        source = entry.source
        if source is None or entry.kind == "unknown":
            return _NONE
        depth = len(self.graph.ancestors(source.id))
        if entry.kind == "output":
            step = self.run.steps.filter(block_id=source.id, item_key=self._key(depth)).first()
            return step.output if step is not None and step.status == "succeeded" else _NONE
        key = self._key(depth + 1)
        item = ItemRun.objects.filter(run=self.run, key=key).first()
        if item is None:
            return _NONE
        if entry.kind == "item":
            return item.data
        match = _SEGMENT.match(key.rsplit("/", 1)[-1])
        return {"index": int(match["index"]) if match else item.index, "item": item.data}
