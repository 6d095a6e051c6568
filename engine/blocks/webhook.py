"""Webhook trigger: the posted JSON body, checked against an optional JSON schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from engine.blocks.base import BaseBlock, config_schema
from engine.core.retry import BlockError
from engine.core.schemas import JsonSchema, obj
from engine.core.spec import BlockContext


def body_errors(schema: Mapping[str, Any] | None, body: Any) -> list[str]:
    """Messages for each way `body` fails `schema` (empty when it passes or there is none)."""
    if not schema:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}"
        for e in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    ][:20]


class WebhookBlock(BaseBlock):
    type = "webhook"
    label = "Webhook"
    description = "Starts the workflow when JSON is posted to its URL."
    icon = "webhook"
    config_schema = config_schema(
        {"body_schema": {"type": "object", "title": "Body JSON schema"}},
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj({"body": dict(config.get("body_schema") or {})})

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        schema = config.get("body_schema")
        if schema:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                return [("body_schema", f"not a valid JSON schema: {exc.message}")]
        return []

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        errors = body_errors(ctx.raw_config.get("body_schema"), ctx.run_input)
        if errors:
            raise BlockError("body does not match the schema: " + "; ".join(errors))
        return {"body": ctx.run_input}
