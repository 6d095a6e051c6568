"""Shared scaffolding for block types: the common config fields and default hooks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from engine.core.limits import GraphLimits
from engine.core.result_cache import MAX_TTL_SECONDS
from engine.core.schemas import JsonSchema
from engine.core.spec import BlockContext

COMMON_PROPERTIES: dict[str, JsonSchema] = {
    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600, "title": "Timeout (s)"},
    # A branch that runs only when there is something for it (engine/core/executor.py).
    "run_if": {
        "type": "string",
        "maxLength": 1000,
        "title": "Run only if (one reference, e.g. <loop.failed>; skipped when it is empty)",
    },
}


# For blocks that reach a remote service: their own retry policy for transient failures
# (429, 5xx, timeouts, connection errors), within the operator's (KLYNTOS_RETRY_*) caps.
RETRY_PROPERTY: JsonSchema = {
    "type": "object",
    "title": "Retries of transient failures (429, 5xx, timeouts, connection errors)",
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 10, "title": "Attempts"},
        "base_delay": {"type": "number", "minimum": 0, "maximum": 60, "title": "First delay (s)"},
        "max_delay": {"type": "number", "minimum": 0, "maximum": 600, "title": "Longest delay (s)"},
    },
    "additionalProperties": False,
}


# For blocks whose output depends only on their resolved config (agent, HTTP): reuse it for
# `ttl` seconds instead of calling again (engine/core/result_cache.py).
CACHE_PROPERTY: JsonSchema = {
    "type": "object",
    "title": "Cache the result (same resolved config within ttl: no call)",
    "properties": {
        "ttl": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_TTL_SECONDS,
            "title": "Keep for (s)",
        },
    },
    "required": ["ttl"],
    "additionalProperties": False,
}


def config_schema(
    properties: Mapping[str, JsonSchema],
    required: list[str] | None = None,
    *,
    retry: bool = False,
    cache: bool = False,
) -> JsonSchema:
    extra = {"retry": RETRY_PROPERTY} if retry else {}
    if cache:
        extra["cache"] = CACHE_PROPERTY
    return {
        "type": "object",
        "properties": {**properties, **COMMON_PROPERTIES, **extra},
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
    size_limited_fields: frozenset[str] = frozenset()
    # What testing this block alone from the editor really does, said before it runs
    # (empty: nothing beyond computing its output).
    test_effect = ""

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return {}

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        return []

    def check_limits(self, config: Mapping[str, Any], limits: GraphLimits) -> list[tuple[str, str]]:
        return []

    def advice(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Warnings (the graph still saves and runs): (field, message) pairs."""
        return []

    def origin(self, config: Mapping[str, Any], services: Any) -> str | None:
        """The URL whose origin the block calls, when its config says so before it runs (a
        loop opens those connections ahead: engine/core/preconnect.py); None otherwise."""
        return None

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
            "test_effect": self.test_effect,
        }
