"""Testing one block from the editor ("test this block"): what the names it references stand
for, and one run of that block alone through the executor, in a scope the caller fills (pins,
a past run's step outputs, or values typed by hand).

Nothing here is a second block runner: the block runs through `Executor.run_one` (rendering,
attempt timeouts, the one retry policy, events, output size checks) and its references are
resolved by `refs.py`. Published runs never come here, so pins never reach them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema

from engine.core.events import Event, EventBus
from engine.core.executor import Executor, RunOptions, StepFailed
from engine.core.graph import Block, Graph
from engine.core.redaction import Redactor
from engine.core.refs import (
    MissingReference,
    Reference,
    Scope,
    find_references,
    iter_strings,
    render,
)
from engine.core.spec import BlockType, Registry

InputKind = Literal["output", "item", "iteration", "unknown"]
ENV_ROOT = "env"
# Trigger blocks read the run's input, not references: their test takes that input.
TRIGGER_TYPES = frozenset({"webhook", "schedule"})


@dataclass(frozen=True, slots=True)
class InputName:
    """A name a block's config reads, and what it stands for at that block: an upstream
    block's output, a loop's item or iteration (`{index, item}`), or nothing in scope."""

    name: str
    kind: InputKind
    source: Block | None = None


class MissingInput(Exception):
    """A reference the test's scope cannot resolve; names the block and the field."""

    def __init__(self, block: Block, field_path: str, reference: Reference, detail: str) -> None:
        self.block = block
        self.field = field_path
        self.reference = reference
        super().__init__(f"{block.name}.{field_path}: {detail}")


class NotTestable(Exception):
    """A block that is not tested alone (a loop: its body is); the message says why."""


def untestable_reason(block: Block) -> str | None:
    if block.is_loop:
        return (
            "a Loop is tested through its body: select a block inside it and test that block "
            "with one item (pinned, from the last run, or typed by hand); run the workflow "
            "as a draft to run the whole loop"
        )
    return None


def config_problems(spec: BlockType, config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for what makes the config unusable, as validation reports it: the
    block's schema first, then its own checks."""
    validator = jsonschema.Draft202012Validator(spec.config_schema)
    problems = [
        (".".join(str(p) for p in error.absolute_path) or "config", error.message)
        for error in sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.path))
    ]
    return problems or list(spec.check(config))


def _references(block: Block, spec: BlockType) -> Iterator[tuple[str, Reference]]:
    """(field path, reference) for every reference in the config, expressions excepted."""
    for key, value in block.config.items():
        if key in spec.expression_fields:
            continue
        for path, text in iter_strings(value, (key,)):
            for ref in find_references(text):
                yield ".".join(path), ref


def input_names(graph: Graph, block: Block, spec: BlockType) -> list[InputName]:
    """Each name the block reads (but `env`), once, in the order the config first reads it."""
    seen: dict[str, InputName] = {}
    for _, ref in _references(block, spec):
        if ref.root != ENV_ROOT and ref.root not in seen:
            seen[ref.root] = find_name(graph, block, ref.root)
    return list(seen.values())


def find_name(graph: Graph, block: Block, name: str) -> InputName:
    """What `name` stands for at `block`, by validation's rule: an upstream sibling's output,
    else, loop by loop outwards, a block upstream of that loop, the loop's item (its
    `variable`), or its iteration (`loop` for the innermost, or the loop's own name)."""
    target = graph.by_name(name)
    if target is not None and _upstream(graph, target, block):
        return InputName(name, "output", target)
    innermost = True
    for loop in graph.ancestors(block.id):
        if target is not None and _upstream(graph, target, loop):
            return InputName(name, "output", target)
        variable = str(loop.config.get("variable") or "item")
        if name == "loop" and innermost:
            return InputName(name, "iteration", loop)
        if name == variable:
            return InputName(name, "item", loop)
        if name == loop.name:
            return InputName(name, "iteration", loop)
        innermost = False
    return InputName(name, "unknown", target)


def _upstream(graph: Graph, source: Block, of: Block) -> bool:
    """Whether `source` is an ancestor of `of` through edges at `of`'s level."""
    if source.parent != of.parent or source.id == of.id:
        return False
    predecessors = graph.predecessors(of.parent)
    stack, seen = [of.id], {of.id}
    while stack:
        for pred in predecessors.get(stack.pop(), ()):
            if pred == source.id:
                return True
            if pred not in seen:
                seen.add(pred)
                stack.append(pred)
    return False


def check_inputs(block: Block, spec: BlockType, scope: Scope) -> None:
    """Every reference resolves in `scope`, or MissingInput names the first that does not."""
    for where, ref in _references(block, spec):
        try:
            scope.resolve(ref)
        except MissingReference as exc:
            if ref.root == ENV_ROOT and len(ref.path) != 1:  # as validation says it
                detail = f"{ref.text}: a secret is one value: write <env.NAME>"
            elif ref.root == ENV_ROOT:
                detail = f"{ref.text}: no secret named '{ref.path[0]}'"
            else:
                try:
                    scope.lookup(ref.root)
                except KeyError:
                    detail = (
                        f"{ref.text}: no value for '{ref.root}' (pin its output, run the "
                        "workflow once, or give it in the inputs)"
                    )
                else:
                    detail = str(exc)
            raise MissingInput(block, where, ref, detail) from None


def shown_config(
    spec: BlockType, config: Mapping[str, Any], scope: Scope, redactor: Redactor
) -> dict[str, Any]:
    """The config as the test resolved it, secrets masked. Fields the block writes itself
    (`raw_fields`: prompts, the SQL, the URL, the Slack text) are shown with the values in
    place; the block itself binds, encodes or escapes them as it sends."""
    shown = {
        key: value if key in spec.expression_fields else render(value, scope)
        for key, value in config.items()
    }
    masked: dict[str, Any] = redactor.value(shown)
    return masked


@dataclass
class StepTest:
    status: Literal["succeeded", "failed"]
    output: Any = None
    error: str | None = None
    attempts: int = 0
    duration: float = 0.0
    usage: list[Any] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "duration": round(self.duration, 4),
            "usage": self.usage,
            "retries": self.retries,
            "config": self.config,
        }


async def run_step_test(
    graph: Graph,
    block: Block,
    registry: Registry,
    *,
    services: Any,
    env: Mapping[str, str],
    values: Mapping[str, Any],
    trigger_input: Any = None,
    options: RunOptions | None = None,
    within: float = 60.0,
) -> StepTest:
    """Run `block` alone with `values` in scope (its inputs by name), for at most `within`
    seconds, retries included. Raises NotTestable for
    a loop and MissingInput before anything runs when a reference has no value; a failure of
    the block itself is a result (`status: failed`), as in a run."""
    reason = untestable_reason(block)
    if reason is not None:
        raise NotTestable(reason)
    spec = registry[block.type]
    scope = Scope({ENV_ROOT: dict(env)}).child(values)
    check_inputs(block, spec, scope)
    redactor = Redactor(env.values())
    events: list[Event] = []
    executor = Executor(
        graph,
        registry,
        bus=EventBus(events.append, redactor),
        services=services,
        env=env,
        options=options,
    )
    result = StepTest("failed", config=shown_config(spec, block.config, scope, redactor))
    started = time.monotonic()
    try:
        async with asyncio.timeout(within):
            await executor.run_one(block, scope, trigger_input)
    except StepFailed:
        pass  # its step.failed event says why
    except TimeoutError:
        result.error = f"the test stopped after {within:g} s (KLYNTOS_BLOCK_TEST_TIMEOUT)"
        result.attempts = sum(1 for e in events if e.type == "step.retrying") + 1
    result.duration = time.monotonic() - started
    for event in events:
        data = event.data
        if event.type == "step.retrying":
            result.retries.append(
                {"attempt": data["attempt"], "delay": data["delay"], "error": data["error"]}
            )
        elif event.type == "step.finished":
            result.status = "succeeded"
            result.output = data["output"]  # redacted by the bus, like a run's rows
            result.attempts = data["attempts"]
            result.usage = data["usage"]
        elif event.type == "step.failed":
            result.error = data["error"]
            result.attempts = data["attempts"]
    if result.error is not None and result.status == "failed":
        result.error = redactor.text(result.error)
    return result
