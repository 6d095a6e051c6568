"""What a run already did, so that doing it again costs nothing: the memo of a resumed run
(its own stored rows) or of a retry (the rows of the run it retries).

A succeeded step's stored output is its memo: the executor returns it instead of running
the block. A step whose stored output had a secret masked is not in the memo (it is not what
the block made), nor is a loop's step (its stored output keeps counts, not results: the loop
runs again and each of its items finds its own steps here). An item's recorded failure is
kept as it is on resume; a retry runs failed items again from their failed step.

Entries are taken out as they are used, so the memo's memory shrinks as the run goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.core.graph import Graph
from engine.core.loop_state import LoopState

# A step a retry took from the run it repeats (its row's `cache`): made by that run, so its
# calls are that run's; the retry's row keeps them as `saved_usage`, its `usage` is empty.
REUSED = "reused"


@dataclass(frozen=True, slots=True)
class StoredStep:
    output: Any
    attempts: int = 1
    # What this run's own calls used (a resumed run's steps are its own: it spent them).
    usage: list[dict[str, Any]] = field(default_factory=list)
    duration: float | None = None
    # Recorded again as stored: the result cache's "hit"/"miss" and what a hit saved, or
    # REUSED and what the retried run's calls used.
    cache: str = ""
    saved_usage: list[dict[str, Any]] = field(default_factory=list)

    def carried(self) -> StoredStep:
        """This step, as a retry of its run reuses it: no call of the retry's, the calls
        its run made (or the run that one repeated) as `saved_usage`."""
        made = self.saved_usage if self.cache == REUSED else self.usage
        return StoredStep(self.output, self.attempts, [], self.duration, REUSED, made)


@dataclass(frozen=True, slots=True)
class ItemFailure:
    block: str | None
    error: str


@dataclass(frozen=True, slots=True)
class DoneItem:
    """An item that succeeded before: who ran it and when, which its row keeps saying."""

    worker: str = ""
    started_at: float | None = None  # epoch seconds
    duration: float | None = None


@dataclass
class Memo:
    steps: dict[tuple[str, str], StoredStep] = field(default_factory=dict)
    # Items whose failure stands (resume); a retry leaves this empty.
    failures: dict[str, ItemFailure] = field(default_factory=dict)
    # Items that succeeded before, by key.
    done: dict[str, DoneItem] = field(default_factory=dict)
    # A resumed run's top-level loops' state (`LoopState.as_dict()`), by loop block id.
    loop_states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.steps or self.failures or self.loop_states)

    def take_step(self, item_key: str, block_id: str) -> StoredStep | None:
        return self.steps.pop((item_key, block_id), None)

    def take_failure(self, item_key: str) -> ItemFailure | None:
        return self.failures.pop(item_key, None)

    def take_done(self, item_key: str) -> DoneItem | None:
        return self.done.pop(item_key, None)

    def take_loop_state(self, loop_id: str) -> LoopState | None:
        return LoopState.from_dict(self.loop_states.pop(loop_id, None))

    def settled(self, item_key: str) -> bool:
        """Whether the item ended before (succeeded or failed for good): it reuses what it
        did and calls nobody (a step whose stored output was masked aside)."""
        return item_key in self.done or item_key in self.failures

    def absorb(self, other: Memo) -> None:
        """Add what another execution did (a distributed loop's chunks)."""
        self.steps.update(other.steps)
        self.failures.update(other.failures)
        self.done.update(other.done)

    @property
    def size(self) -> int:
        return len(self.steps) + len(self.failures)


def downstream_of_loops(graph: Graph) -> set[str]:
    """Blocks that read, directly or through siblings, a loop at their own level.

    A retry runs failed items again, so every loop's output changes and what was computed
    from it must be computed again (the summary of a batch covers the whole batch); the
    steps before the loops, and inside the items, are reused as they are.
    """
    found: set[str] = set()
    for parent in {None, *(b.id for b in graph.blocks if b.is_loop)}:
        predecessors = graph.predecessors(parent)
        successors: dict[str, list[str]] = {block_id: [] for block_id in predecessors}
        for block_id, preds in predecessors.items():
            for pred in preds:
                successors[pred].append(block_id)
        frontier = [b for b in predecessors if graph.block(b).is_loop]
        while frontier:
            block_id = frontier.pop()
            for following in successors[block_id]:
                if following not in found:
                    found.add(following)
                    frontier.append(following)
    return found
