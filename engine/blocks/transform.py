"""Transform: a JMESPath expression over referenced data (computation without code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions

from engine.blocks.base import BaseBlock, config_schema
from engine.core.retry import BlockError
from engine.core.schemas import JsonSchema, obj
from engine.core.spec import BlockContext


class TransformBlock(BaseBlock):
    type = "transform"
    label = "Transform"
    description = "Reshapes data with a JMESPath expression."
    icon = "shuffle"
    expression_fields = frozenset({"expression"})
    config_schema = config_schema(
        {
            "input": {"title": "Input (references)"},
            "expression": {"type": "string", "title": "JMESPath expression", "minLength": 1},
        },
        required=["input", "expression"],
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj({"result": {}})

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        try:
            jmespath.compile(str(config.get("expression", "")))
        except jmespath.exceptions.JMESPathError as exc:
            return [("expression", f"invalid JMESPath: {exc}")]
        return []

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        try:
            return {"result": jmespath.search(ctx.config["expression"], ctx.config.get("input"))}
        except (jmespath.exceptions.JMESPathError, TypeError, ValueError) as exc:
            raise BlockError(f"expression failed: {exc}") from exc
