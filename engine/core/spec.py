"""What a block type declares to the engine: config schema, output schema, and `run`."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.core.json_fast import compact
from engine.core.limits import GraphLimits
from engine.core.redaction import Redactor
from engine.core.refs import Scope
from engine.core.sizes import DEFAULT_MAX_OUTPUT_BYTES, SizeMeter, text_bytes

JsonSchema = dict[str, Any]
ANY_SCHEMA: JsonSchema = {}


@dataclass(slots=True)
class BlockContext:
    """What a running block sees: its rendered config and the run's services."""

    block_id: str
    block_name: str
    config: Mapping[str, Any]
    raw_config: Mapping[str, Any]
    scope: Scope
    services: Any
    attempt: int
    usage: list[dict[str, Any]] = field(default_factory=list)
    run_input: Any = None
    # The run's secret values: a block quoting an upstream's text cuts it with
    # `redactor.excerpt`, which masks before cutting (a cut secret would escape masking).
    redactor: Redactor = field(default_factory=Redactor)
    # KLYNTOS_MAX_OUTPUT_BYTES: what the block may produce (expressions are held to it as
    # they run; the executor measures every output when it is recorded).
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    # The run's output meter: a block that measured a value already hands it the size.
    sizes: SizeMeter | None = None
    # The run's input already passed the trigger's body schema (RunOptions.input_checked).
    input_checked: bool = False

    def record_usage(self, **usage: Any) -> None:
        self.usage.append(usage)

    def written_out(self, output: Any) -> None:
        """Measure `output` by writing it out as JSON once, and hand that text to the meter
        and the redactor, which then need not walk it (the meter) or write it again (the
        redactor's scan of the step's event). Only for a value known to be a plain tree of
        modest size (an answer the block just parsed): a value built by an expression can
        hold one part many times over, and its JSON grow far past what it holds."""
        # Compact, as the meter counts (a byte per comma and colon); its numbers are exact
        # where the meter's are bounds (24 bytes for any float).
        text = compact(output)
        if self.sizes is not None:
            self.sizes.remember(output, text_bytes(text))
        self.redactor.remember_json(output, text)


class BlockType(Protocol):
    type: str
    label: str
    description: str
    icon: str
    config_schema: JsonSchema
    # Config fields the generic renderer leaves alone (the block compiles references itself).
    raw_fields: frozenset[str]
    # Config fields that are expressions, not text: never scanned for references.
    expression_fields: frozenset[str]
    # Text fields sent to a service that refuses or cuts large text (an LLM prompt, a Slack
    # message): validation warns when a list that grows with the batch is placed in them.
    size_limited_fields: frozenset[str]
    # What testing the block alone from the editor really does (a Slack post, a row
    # written), shown before the test runs; empty when it only computes its output.
    test_effect: str

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema: ...

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Checks beyond the JSON schema: (field, message) pairs."""
        ...

    def check_limits(self, config: Mapping[str, Any], limits: GraphLimits) -> list[tuple[str, str]]:
        """Checks against the operator's limits (settings): (field, message) pairs."""
        ...

    def advice(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Warnings, not errors: (field, message) pairs."""
        ...

    def origin(self, config: Mapping[str, Any], services: Any) -> str | None:
        """The URL whose origin the block calls, known from its config (None: unknown)."""
        ...

    def run(self, ctx: BlockContext) -> Awaitable[dict[str, Any]]: ...


Registry = Mapping[str, BlockType]
