"""Shared scaffolding for block types: the common config fields and default hooks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from engine.core.schemas import JsonSchema
from engine.core.spec import BlockContext

COMMON_PROPERTIES: dict[str, JsonSchema] = {
    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600, "title": "Timeout (s)"},
}


def config_schema(
    properties: Mapping[str, JsonSchema], required: list[str] | None = None
) -> JsonSchema:
    return {
        "type": "object",
        "properties": {**properties, **COMMON_PROPERTIES},
        "required": required or [],
        "additionalProperties": False,
    }


class BaseBlock(ABC):
    """Every block type derives from this, so the registry satisfies `spec.BlockType`."""

    type = ""
    label = ""
    description = ""
    icon = ""
    config_schema: JsonSchema = config_schema({})
    raw_fields: frozenset[str] = frozenset()
    expression_fields: frozenset[str] = frozenset()

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return {}

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        return []

    @abstractmethod
    async def run(self, ctx: BlockContext) -> dict[str, Any]: ...

    def describe(self) -> dict[str, Any]:
        """The catalogue entry the palette and the REST API show."""
        return {
            "type": self.type,
            "label": self.label,
            "description": self.description,
            "icon": self.icon,
            "config_schema": self.config_schema,
            "outputs": self.output_schema({}),
        }
