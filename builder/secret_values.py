"""A secret's value typed into a block's field instead of its `<env.NAME>` reference.

The value is then stored in clear in the workflow's versions, shown in the editor and the
version diff, and copied with the workflow; nothing else would say so (export and run
outputs mask it, which hides the slip). Validation warns on the block and field, naming the
secret, never its value."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from engine.core.graph import Graph
from engine.core.redaction import MIN_SECRET_LENGTH
from engine.core.refs import iter_strings
from engine.core.validation import ValidationIssue


def secret_value_warnings(graph: Graph, secrets: Mapping[str, str]) -> Iterator[ValidationIssue]:
    values = {
        name: value
        for name, value in secrets.items()
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH
    }
    if not values:
        return
    for block in graph.blocks:
        for path, text in iter_strings(dict(block.config)):
            for name, value in values.items():
                if value in text:
                    yield ValidationIssue(
                        block.id,
                        block.name,
                        ".".join(path),
                        f"holds the value of the secret {name}: write <env.{name}> instead "
                        "(a value typed here is stored in clear in every version)",
                    )
