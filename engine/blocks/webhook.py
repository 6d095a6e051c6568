"""Webhook trigger: the posted JSON body, checked against an optional JSON schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.blocks.base import BaseBlock, config_schema
from engine.core.errors import BlockError
from engine.core.schemas import (
    JsonSchema,
    Unresolvable,
    obj,
    schema_problems,
    schema_validator,
    with_defaults,
)
from engine.core.spec import BlockContext


def body_errors(schema: Any, body: Any) -> list[str]:
    """Messages for each way `body` fails `schema` (empty when it passes or there is none).

    A schema that cannot be used (validation normally refuses it first) is reported as a
    problem too, so callers answer 422 or fail the step instead of crashing.
    """
    if not schema:
        return []
    problems = schema_problems(schema)
    if problems:
        return [f"body_schema: {problem}" for problem in problems]
    try:
        errors = sorted(
            schema_validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path)
        )
    except Unresolvable as exc:  # e.g. a `$ref` reached through `$dynamicRef`
        return [f"body_schema: a $ref cannot be resolved ({exc})"]
    except RecursionError:  # {"$ref": "#"} refers to itself without end
        return ["body_schema: its $refs refer to each other without end"]
    messages = [
        f"{'.'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}" for e in errors
    ]
    return messages[:20]


class WebhookBlock(BaseBlock):
    type = "webhook"
    label = "Webhook"
    description = "Starts the workflow when JSON is posted to its URL."
    icon = "webhook"
    test_effect = "checks the input you give against the body schema; nothing is sent"
    config_schema = config_schema(
        {"body_schema": {"type": "object", "title": "Body JSON schema"}},
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        schema = config.get("body_schema")
        return obj({"body": dict(schema) if isinstance(schema, Mapping) else {}})

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        schema = config.get("body_schema")
        if not schema:
            return []
        return [("body_schema", problem) for problem in schema_problems(schema)]

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        schema = ctx.raw_config.get("body_schema")
        if not ctx.input_checked:
            errors = body_errors(schema, ctx.run_input)
            if errors:
                raise BlockError("body does not match the schema: " + "; ".join(errors))
        # The schema's defaults fill the fields a body left out (an optional lead's title).
        return {"body": with_defaults(schema, ctx.run_input, ctx.max_output_bytes)}
