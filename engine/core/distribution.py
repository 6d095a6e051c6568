"""Spreading one loop's items over several processes (no Django here).

The executor running a run (the coordinator) may hand a top-level loop's items to a
`Distributor`: it executes them elsewhere in chunks and returns once every item is terminal;
what they did is read back as a memo, so the loop composes its outputs and aggregations over the
whole batch exactly as if it had run them (each item's steps are reused, never run again).
A chunk's own executor runs only its slice (`ChunkSpan`) and composes nothing. The loop
reads what its items did back a slice of items at a time (`stored`), so composing a big
batch holds one slice's outputs at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.core.graph import Block
    from engine.core.memo import Memo


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """The items (indexes, in dispatch order) of one loop that one chunk executes."""

    block_id: str
    indexes: tuple[int, ...]


class Distributor(Protocol):
    def wants(self, block: Block, total: int) -> bool:
        """Whether this loop's items go out in chunks (else the loop runs them itself)."""
        ...

    async def fan_out(
        self, block: Block, items: list[Any], order: list[int], progress: Any
    ) -> None:
        """Execute the loop's items elsewhere; return once all are terminal.
        `progress(counts)` reports live counts. Raises `Interrupted` when this process
        stops meanwhile."""
        ...

    async def stored(self, block: Block, indexes: Sequence[int] | None) -> Memo:
        """What the loop's items did, as a memo: for `indexes`, those items' own steps and
        failures (the loop composes a slice at a time); for None, every item's steps,
        failures and done items, its inner loops' items included."""
        ...
