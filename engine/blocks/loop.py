"""Loop: runs its child blocks once per item. Scheduling lives in engine/core/loop.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.blocks.base import BaseBlock, config_schema
from engine.core.expressions import MAX_EXPRESSION_LENGTH, ExpressionError, compile_expression
from engine.core.graph import NAME_PATTERN
from engine.core.limits import MAX_BATCH_SIZE, MAX_CONCURRENT
from engine.core.loop import ON_ALL_FAILED
from engine.core.loop_policies import breaker_policy
from engine.core.provider_settings import BREAKER_MODES, MAX_BREAKER_WINDOW, MAX_GIVE_UP_AFTER
from engine.core.refs import whole_reference
from engine.core.spec import BlockContext
from engine.core.validation import RESERVED_NAMES


class LoopBlock(BaseBlock):
    type = "loop"
    label = "Loop"
    description = "Runs the blocks inside it once per item, in parallel up to a cap."
    icon = "repeat"
    expression_fields = frozenset({"aggregations", "priority"})
    config_schema = config_schema(
        {
            "items": {"type": ["string", "array"], "title": "Items"},
            "variable": {"type": "string", "title": "Variable name", "default": "item"},
            "execution": {"enum": ["parallel", "sequential"], "default": "parallel"},
            "max_concurrent": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_CONCURRENT,
                "default": 10,
            },
            "batch_size": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_BATCH_SIZE,
                "title": "Batch size (waves: each batch ends before the next starts; empty: "
                "a sliding window)",
            },
            "fail_fast": {"type": "boolean", "default": False},
            "on_all_failed": {
                "enum": list(ON_ALL_FAILED),
                "default": "fail",
                "title": "When every item fails: stop the run at the loop (fail), or run the "
                "blocks after it, to report the failures (continue; the run still ends failed)",
            },
            "retry_failed": {
                "type": "integer",
                "minimum": 0,
                "maximum": 5,
                "default": 0,
                "title": "Retry failed items after the batch (passes)",
            },
            "circuit_breaker": {
                "type": "object",
                "title": (
                    "Provider breaker for the calls of its items: pause a failing provider "
                    "(default KLYNTOS_BREAKER)"
                ),
                "properties": {
                    "mode": {"enum": list(BREAKER_MODES), "default": "auto"},
                    "failure_rate": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": 1,
                        "default": 0.25,
                    },
                    "min_calls": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_BREAKER_WINDOW,
                        "default": 10,
                    },
                    "window": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_BREAKER_WINDOW,
                        "default": 20,
                    },
                    "cool_down": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": 86400,
                        "default": 5,
                    },
                    "probes": {"type": "integer", "minimum": 1, "maximum": 100, "default": 3},
                    "give_up_after": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": MAX_GIVE_UP_AFTER,
                        "default": 900,
                        "description": (
                            "Seconds a provider may stay unavailable (auto mode) before the "
                            "items waiting for it fail with the reason, so the run ends "
                            "(Retry failed reruns them later); 0: wait forever"
                        ),
                    },
                    # Saved before the breaker moved to the providers: read as min_calls.
                    "min_items": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_BREAKER_WINDOW,
                        "title": "min_items (older name of min_calls)",
                        "deprecated": True,  # the editor hides it unless a save still sets it
                    },
                },
                "additionalProperties": False,
            },
            "adaptive": {
                "type": "object",
                "title": "Adaptive concurrency (grows to max_concurrent, falls back on failures)",
                "properties": {
                    "start": {"type": "integer", "minimum": 1, "default": 5},
                    "min": {"type": "integer", "minimum": 1, "default": 2},
                    "success_rate": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.95},
                    "window": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
                },
                "additionalProperties": False,
            },
            "priority": {
                "type": "string",
                "title": "Priority (JMESPath over an item)",
                "maxLength": MAX_EXPRESSION_LENGTH,
            },
            "aggregations": {
                "type": "object",
                "title": "Aggregations (JMESPath over the results)",
                "additionalProperties": {"type": "string", "maxLength": MAX_EXPRESSION_LENGTH},
                "maxProperties": 100,
            },
        },
        required=["items"],
    )

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        items = config.get("items")
        if isinstance(items, str) and whole_reference(items) is None:
            # No example name: a generic one (`<webhook.body.leads>`) rarely exists in the
            # workflow at hand; the field's placeholder shows one from its own scope.
            problems.append(
                ("items", "items must be one reference to a list: type < to pick one in scope")
            )
        variable = config.get("variable", "item")
        if not isinstance(variable, str) or not NAME_PATTERN.fullmatch(variable):
            problems.append(("variable", "a variable name is letters, digits and _"))
        elif variable in RESERVED_NAMES:
            problems.append(("variable", f"'{variable}' is reserved"))
        aggregations = config.get("aggregations")
        # Anything but an object is the config schema's error, reported there.
        for name, expression in (aggregations if isinstance(aggregations, Mapping) else {}).items():
            if not NAME_PATTERN.fullmatch(str(name)):
                problems.append((f"aggregations.{name}", "a name is letters, digits and _"))
            problems.extend(_expression_problem(f"aggregations.{name}", expression))
        if config.get("priority"):
            problems.extend(_expression_problem("priority", config["priority"]))
        breaker = config.get("circuit_breaker")
        if isinstance(breaker, Mapping) and breaker:
            try:
                breaker_policy(breaker)
            except ValueError as exc:
                problems.append(("circuit_breaker", str(exc).removeprefix("circuit_breaker: ")))
        adaptive = config.get("adaptive")
        if isinstance(adaptive, Mapping) and adaptive:
            cap = int(config.get("max_concurrent") or 10)
            start, floor = int(adaptive.get("start", min(5, cap))), int(adaptive.get("min", 2))
            if not floor <= start <= cap:
                problems.append(
                    ("adaptive", f"needs min ≤ start ≤ max_concurrent ({floor} ≤ {start} ≤ {cap})")
                )
        return problems

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        raise RuntimeError("the executor runs loops itself")


def _expression_problem(field: str, expression: Any) -> list[tuple[str, str]]:
    try:
        compile_expression(str(expression))
    except ExpressionError as exc:
        return [(field, f"invalid JMESPath: {exc}")]
    return []
