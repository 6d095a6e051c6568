"""The block names a loop's aggregation reads, from its JMESPath tree.

An aggregation reads its loop's blocks by name in two ways: `outputs.<name>` (an item's
step output, `results[*].outputs.agent_analysis.score`) and `block == '<name>'` (a failed
item's failing block, `failed[?block=='store_lead']`). Renaming or deleting that block leaves
the name behind: the first reads null (a `sort_by` on it fails only after every item ran),
the second never matches (a count that stays 0). Validation (engine/core/validation.py)
warns on names the loop does not hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.core.expressions import ExpressionError, compile_expression

OUTPUTS, BLOCK = "outputs", "block"


def block_names_read(expression: str) -> list[tuple[str, str]]:
    """(how, name) for each block name `expression` reads: how is `outputs.<name>` or
    `block == '<name>'`, in the order they stand. [] when it does not compile (the
    expression checks say why)."""
    try:
        parsed = compile_expression(expression).parsed
    except ExpressionError:
        return []
    found: list[tuple[str, str]] = []
    for how, name in _names(parsed):
        if (how, name) not in found:
            found.append((how, name))
    return found


def _names(node: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(node, dict):
        return
    children = node.get("children") or []
    kind = node.get("type")
    if kind == "subexpression":  # flattened: `a.outputs.b.c` is [a, outputs, b, c]
        for first, second in zip(children, children[1:], strict=False):
            if _is_field(first, OUTPUTS) and _is_field(second):
                yield f"{OUTPUTS}.{second['value']}", str(second["value"])
    elif kind == "comparator" and node.get("value") in ("eq", "ne") and len(children) == 2:
        left, right = children
        for field, literal in ((left, right), (right, left)):
            if _is_field(field, BLOCK) and literal.get("type") == "literal":
                if isinstance(literal.get("value"), str):
                    yield f"{BLOCK} == '{literal['value']}'", literal["value"]
    for child in children:
        yield from _names(child)


def _is_field(node: Any, value: str | None = None) -> bool:
    return (
        isinstance(node, dict)
        and node.get("type") == "field"
        and (value is None or node.get("value") == value)
    )
