"""A loop's own decisions, kept with the run so that a resume goes on from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class LoopState:
    """What a loop decided as it went that its item rows do not say: adaptive concurrency's
    current limit and the retry passes it finished. Kept with the run for a top-level loop
    (`Run.loops[<id>].state`, from `loop.state` events) and restored on resume."""

    limit: int | None = None  # adaptive concurrency's limit, once it changed
    passes: int = 0  # `retry_failed` passes finished

    def as_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "passes": self.passes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LoopState | None:
        """The stored state, or None when there is none or it is not one (a row written by
        another version is never trusted into a crash)."""
        if not isinstance(data, Mapping):
            return None
        limit, passes = data.get("limit"), data.get("passes", 0)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            return None
        if not isinstance(passes, int) or passes < 0:
            return None
        return cls(limit, passes)

    def __bool__(self) -> bool:
        return self.limit is not None or self.passes > 0
