"""Transform: a JMESPath expression over referenced data (computation without code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.blocks.base import BaseBlock, config_schema
from engine.core.expressions import (
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    compile_expression,
    search_async,
)
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
            "expression": {
                "type": "string",
                "title": "JMESPath expression",
                "minLength": 1,
                "maxLength": MAX_EXPRESSION_LENGTH,
            },
        },
        required=["input", "expression"],
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj({"result": {}})

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        try:
            compile_expression(str(config.get("expression", "")))
        except ExpressionError as exc:
            return [("expression", f"invalid JMESPath: {exc}")]
        return []

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        """Evaluated off the event loop, every value it makes held to the output limit."""
        try:
            result = await search_async(
                ctx.config["expression"],
                ctx.config.get("input"),
                max_bytes=ctx.max_output_bytes,
                what="the expression's result",
                sizes=ctx.sizes,
            )
        except ExpressionError as exc:
            raise ExpressionError(f"expression failed: {exc}") from None
        return {"result": result}
