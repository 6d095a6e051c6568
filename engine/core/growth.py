"""Which of a loop's aggregations grow with the batch, read from their JMESPath trees.

`results[*].{id: item.id, risk: outputs.a.risk}` is one entry per item: put into a prompt or
a Slack text after 5,000 items, it is megabytes (refused or cut). `length(results)`,
`failed[:3]` or `reverse(sort_by(rows, &score))[:50]` stay the same size whatever the
batch. Validation (engine/core/validation.py) warns on the first kind where it warns on
`<loop.results>` itself.

Each node of the tree is read as GROWS (a list, or a text, as long as the batch) or not,
given what it is applied to: the loop's output at the root (where `results`, `failed` and
the aggregations found growing before it grow), an element, or a growing value. A slice
with an end (`[:50]`, `[-5:]`), an index, a count or a sum bounds what it is given; a
projection, a sort or a `join` keeps its list's growth. What is not modelled grows if any
of its parts does, so a warning may be given where none was due, never the reverse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.core.expressions import ExpressionError, compile_expression

# The loop's own lists, one entry per item (or per failed item).
GROWING_OUTPUTS = frozenset({"results", "failed"})
# Functions whose result is a scalar or one element, whatever they are given.
BOUNDING_FUNCTIONS = frozenset(
    {
        "abs", "avg", "ceil", "contains", "ends_with", "floor", "length", "max", "max_by",
        "min", "min_by", "starts_with", "sum", "to_number", "type",
    }
)  # fmt: skip

# What a node is applied to: the loop's output, or a value that grows, or one that does not.
ROOT, GROWS, BOUNDED = "root", "grows", "bounded"


def growing_aggregations(aggregations: Mapping[str, Any]) -> set[str]:
    """The names of `aggregations` (in their order: each reads those before it) whose value
    grows with the batch. One that does not compile is left to the expression checks."""
    growing = set(GROWING_OUTPUTS)
    for name, expression in aggregations.items():
        try:
            parsed = compile_expression(str(expression)).parsed
        except ExpressionError:
            continue
        if _Reader(growing).value(parsed, ROOT) == GROWS:
            growing.add(str(name))
    return growing - GROWING_OUTPUTS


class _Reader:
    def __init__(self, growing: set[str]) -> None:
        self.growing = growing

    def value(self, node: Any, current: str) -> str:
        kind = node["type"]
        children = node.get("children") or []
        if kind == "field":
            if current == ROOT:
                return GROWS if node["value"] in self.growing else BOUNDED
            return BOUNDED  # a field of an element (or of a list: null)
        if kind in ("current", "identity"):
            return GROWS if current in (ROOT, GROWS) else BOUNDED
        if kind in ("literal", "comparator", "not_expression", "expref", "index", "slice"):
            return BOUNDED
        if kind in ("subexpression", "pipe"):
            left = self.value(children[0], current)
            return self.value(children[1], _context(left))
        if kind == "index_expression":
            left = self.value(children[0], current)
            selector = children[1]
            if selector["type"] == "slice" and _bounded_slice(selector["children"]):
                return BOUNDED
            return left if selector["type"] == "slice" else BOUNDED
        if kind in ("projection", "filter_projection", "value_projection", "flatten"):
            # As many entries as what it projects (its right side applies to one of them).
            return self.value(children[0], current)
        if kind == "function_expression":
            if node["value"] in BOUNDING_FUNCTIONS:
                return BOUNDED
            return _any_grows(self.value(child, current) for child in children)
        # multi-selects, key: value pairs, and/or, anything else: grows if a part does.
        return _any_grows(self.value(child, current) for child in children if child)


def _context(value: str) -> str:
    return GROWS if value == GROWS else BOUNDED


def _bounded_slice(parts: list[Any]) -> bool:
    """`[:50]`, `[10:20]` or `[-5:]`: at most so many entries, however long the list."""
    start, stop, _ = parts
    return stop is not None or (start is not None and start < 0)


def _any_grows(values: Iterable[str]) -> str:
    return GROWS if any(v == GROWS for v in values) else BOUNDED
