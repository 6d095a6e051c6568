"""Executes a validated, frozen graph on asyncio.

A block starts as soon as every block it depends on has finished, so independent branches
overlap (graphlib.TopologicalSorter is the model). Loops are delegated to `loop.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import graphlib
import random
import time
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.core.bounded import stored_output
from engine.core.distribution import ChunkSpan, Distributor
from engine.core.errors import BlockError, TransientError
from engine.core.events import EventBus, EventType
from engine.core.expressions import EXPRESSION_OWNER
from engine.core.graph import Block, Graph
from engine.core.in_flight import ItemPlaces
from engine.core.limits import DEFAULT_MAX_ITEMS_IN_FLIGHT, DEFAULT_MAX_ITEMS_PER_RUN
from engine.core.loop import loop_cap, run_loop
from engine.core.memo import Memo, StoredStep
from engine.core.prices import PriceTable, tally
from engine.core.providers import CURRENT_STEP, RunShare, StepTag, owner_share, run_share
from engine.core.refs import MissingReference, Scope, render
from engine.core.result_cache import cache_key, cache_ttl
from engine.core.retry import RetryPolicy, call_with_retry
from engine.core.sizes import BLOCK_OUTPUT, DEFAULT_MAX_OUTPUT_BYTES, SizeMeter
from engine.core.spec import BlockContext, BlockType, Registry
from engine.core.step_permits import StepPermits


@dataclass(frozen=True)
class RunOptions:
    sequential: bool = False  # every loop runs one item at a time
    max_concurrent: int | None = None  # overrides every loop's cap
    block_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES  # every block output, as JSON
    # A dollar budget for the run: once its steps' priced usage reaches it, loops start no
    # more items (the items in flight finish; the rest are recorded not started).
    budget_usd: float | None = None
    prices: PriceTable | None = None  # what the budget prices usage with
    # An estimate: each top-level loop runs only its first N items (the rest not started);
    # engine/run_costs.estimate extrapolates the run's cost to every item.
    sample_items: int | None = None
    # The run's share of the providers it shares with other runs (providers.py RunShare):
    # its weight among its owner's waiting runs, its priority among them (higher first),
    # and its owner (owners share a provider equally, whatever their runs' weight).
    weight: float = 1.0
    priority: int = 0
    run_key: str = ""  # the run's id: its executors in one process share one RunShare
    owner_key: str = ""  # the run's owner ('' : runs of no owner, one group)
    # The run's input passed its trigger's body schema when the run was created: the webhook
    # step does not check it again (at 10,000 leads a check is ~0.5 s before the first item).
    input_checked: bool = False
    # The run's loop items, all loops together (nested included): at most this many in
    # flight at once (engine/core/in_flight.py), and at most this many in all.
    max_items_in_flight: int = DEFAULT_MAX_ITEMS_IN_FLIGHT
    max_items_per_run: int = DEFAULT_MAX_ITEMS_PER_RUN


@dataclass
class RunOutcome:
    status: str  # succeeded | partially_succeeded | failed
    outputs: dict[str, Any]
    error: str | None = None
    failed_items: int = 0


class Interrupted(Exception):  # noqa: N818 -- a stop, not an error
    """The process is stopping: loops start no more items and the run is left to be resumed
    (by the next start or another worker), neither failed nor cancelled."""


class StepFailed(Exception):
    """A block failed for good; carries the block's name for the item's failure record."""

    def __init__(self, block: Block, message: str, attempts: int = 1) -> None:
        self.block = block
        self.message = message
        self.attempts = attempts
        super().__init__(f"{block.name}: {message}")


class ItemFrame(NamedTuple):
    """Where a step runs: the chain of loop iterations around it ('' at top level), and the
    meter its outputs are measured with (a loop item's own, dropped with the item: the
    run's would keep every output it measured alive until the run ends). A named tuple (one
    per item): immutable, and built in half a frozen dataclass's time."""

    key: str = ""
    sizes: SizeMeter | None = None
    # The loop's permits its steps hold until their rows are stored (the crash bound);
    # None at top level and when nothing is stored.
    permits: StepPermits | None = None


TOP = ItemFrame()


class Executor:
    def __init__(
        self,
        graph: Graph,
        registry: Registry,
        *,
        bus: EventBus,
        services: Any,
        env: Mapping[str, str] | None = None,
        options: RunOptions | None = None,
        memo: Memo | None = None,
        distributor: Distributor | None = None,
        item_gate: contextlib.AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.bus = bus
        self.services = services
        self.env = dict(env or {})
        self.options = options or RunOptions()
        self.rng = random.Random()  # noqa: S311 -- retry jitter, not a secret
        self.failed_items = 0
        # What an earlier execution of this run (or the run a retry repeats) already did.
        self.memo = memo or Memo()
        # Spreads big top-level loops over workers (engine/core/distribution.py), if any.
        self.distributor = distributor
        # Held by each loop item while it runs: what the process takes on (a worker's share).
        self.item_gate = item_gate
        # The places the run's loop items take, all loops together; the process's share
        # is taken with each place.
        self.places = ItemPlaces(max(1, self.options.max_items_in_flight), item_gate)
        # The items the run's loops fanned out to so far (`max_items_per_run`), and, once a
        # loop was refused for passing it, why: no loop starts another item.
        self.items_counted = 0
        self.refused: str | None = None
        self.reused_steps = 0
        # Set by `interrupt()`: loops start no more items, the run ends as Interrupted.
        self.stopping = False
        # Per item key ('' at top level) whose step failed while a sibling loop was in
        # flight: what failed (e.g. "companies[0] failed at company_info"). That loop starts
        # no more items; those in flight finish (`_settle`).
        self.halts: dict[str, str] = {}
        # The run's dollar budget: what its steps spent so far, and whether it was reached.
        self.spent_usd = 0.0
        self.over_budget = False
        self.budget_not_started = 0
        # Top-level loops whose every item failed and that went on (`on_all_failed`): the
        # run ends failed, with their reasons, after the blocks that follow them ran.
        self.failed_loops: list[str] = []
        # One meter for the run: a loop's output holds its items' outputs, measured already.
        self.output_sizes = SizeMeter(self.options.max_output_bytes, BLOCK_OUTPUT)
        # This run's claim on the providers every run shares (fair share, priority).
        options = self.options
        self.share = (
            run_share(options.run_key, options.weight, options.priority, options.owner_key)
            if options.run_key
            else RunShare(options.weight, options.priority, owner_share(options.owner_key))
        )
        # Per loop block: what its `results` entries keep (engine/core/result_needs.py).
        self.results_needs: dict[str, Any] = {}
        self._predecessors = {
            parent: graph.predecessors(parent)
            for parent in {None, *(b.id for b in graph.blocks if b.is_loop)}
        }
        self._chains = {parent: _as_chain(preds) for parent, preds in self._predecessors.items()}
        # (item key, block id) of the steps skipped by `run_if`, so what follows them skips.
        self._skipped: set[tuple[str, str]] = set()

    def interrupt(self) -> None:
        """Stop starting items; the items in flight finish (graceful stop)."""
        self.stopping = True

    async def run(self, trigger_input: Any, *, resumed: bool = False) -> RunOutcome:
        self.trigger_input = trigger_input
        EXPRESSION_OWNER.set(self.options.owner_key)  # its loops' aggregations' threads
        self.bus.emit("run.started", total_blocks=len(self.graph.blocks), resumed=resumed)
        scope = Scope({"env": self.env})
        try:
            outputs = await self.run_level(None, scope, TOP)
        except StepFailed as failure:
            outcome = RunOutcome("failed", {}, str(failure), self.failed_items)
        else:
            outcome = self._outcome(outputs)
        await self.cache_written()
        ending: EventType = "run.failed" if outcome.status == "failed" else "run.finished"
        self.bus.emit(ending, status=outcome.status, error=outcome.error)
        return outcome

    def _outcome(self, outputs: dict[str, Any]) -> RunOutcome:
        """How a run that reached its end ended."""
        if self.failed_loops:  # the blocks after them ran, to report it
            return RunOutcome("failed", outputs, "; ".join(self.failed_loops), self.failed_items)
        stopped = self.budget_not_started
        status = "partially_succeeded" if self.failed_items or stopped else "succeeded"
        reason = self.budget_reason(stopped) if stopped else None
        return RunOutcome(status, outputs, reason, self.failed_items)

    async def run_one(self, block: Block, scope: Scope, trigger_input: Any = None) -> Any:
        """One block alone in `scope`, exactly as a run runs it (rendering, attempts, retries,
        events): the editor's "test this block" (engine/core/single_step.py)."""
        self.trigger_input = trigger_input
        EXPRESSION_OWNER.set(self.options.owner_key)
        return await self.run_block(block, scope, TOP)

    async def run_chunk(self, span: ChunkSpan, trigger_input: Any) -> None:
        """One chunk of a distributed loop: its items only, in the scope the coordinator's
        top-level steps made (their stored outputs, in the memo). Nothing else runs: the
        loop's own step, its composition and the blocks after it are the coordinator's."""
        self.trigger_input = trigger_input
        EXPRESSION_OWNER.set(self.options.owner_key)
        block = self.graph.block(span.block_id)
        scope = Scope({"env": self.env})
        for block_id in self.top_upstream(block.id):
            before = self.graph.block(block_id)
            stored = self.memo.take_step("", block_id)
            if stored is None:
                raise StepFailed(block, f"'{before.name}' has no stored output to start from")
            scope.set(before.name, stored.output)
        await run_loop(self, block, scope, TOP, span=span)
        await self.cache_written()

    async def cache_written(self) -> None:
        """The result cache's outputs of this run written before it ends (they are written
        off the steps' path, engine/result_cache.py): a run started after this one's end
        finds them."""
        cache = getattr(self.services, "result_cache", None)
        if cache is not None:
            await cache.flush()

    def peak_concurrency(self, block_type: str) -> int:
        """At most how many steps of `block_type` this run can have in flight at once: the
        product of the caps of the loops around each such block (the largest of them)."""
        peak = 0
        for block in self.graph.blocks:
            if block.type != block_type:
                continue
            within, parent = 1, block.parent
            while parent is not None:
                loop = self.graph.block(parent)
                within *= loop_cap(self, loop)
                parent = loop.parent
            peak = max(peak, within)
        return peak

    def first_step(self, parent: str) -> str | None:
        """The block every item of loop `parent` starts with, when its body has one (None
        when it starts with several at once, or is empty)."""
        heads = [b for b, before in self._predecessors[parent].items() if not before]
        return heads[0] if len(heads) == 1 else None

    def top_upstream(self, block_id: str) -> set[str]:
        """Every top-level block that `block_id` waits for, directly or not."""
        predecessors = self._predecessors[None]
        upstream: set[str] = set()
        frontier = list(predecessors[block_id])
        while frontier:
            found = frontier.pop()
            if found not in upstream:
                upstream.add(found)
                frontier.extend(predecessors[found])
        return upstream

    async def run_level(self, parent: str | None, scope: Scope, frame: ItemFrame) -> dict[str, Any]:
        """Run the blocks directly under `parent`; after the first failure nothing more
        starts at this level, and what is in flight finishes (`_settle`)."""
        chain = self._chains[parent]
        if chain is not None:  # nothing can overlap: run in order, no scheduler, no tasks
            outputs: dict[str, Any] = {}
            for block_id in chain:
                block = self.graph.block(block_id)
                output = await self.run_block(block, scope, frame)
                scope.set(block.name, output)
                outputs[block.name] = output
            return outputs
        sorter = graphlib.TopologicalSorter(self._predecessors[parent])
        sorter.prepare()
        outputs = {}
        running: dict[asyncio.Task[Any], Block] = {}
        waiter: asyncio.Future[None] | None = None

        async def run_and_wake(block: Block) -> Any:
            try:
                return await self.run_block(block, scope, frame)
            finally:
                # From the task's last step: the level goes on the next pass, where a done
                # callback (asyncio.wait) is only queued once the task has ended, one later.
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

        try:
            while sorter.is_active():
                ready = sorter.get_ready()
                if len(ready) == 1 and not running:
                    # Nothing to overlap with: run inline rather than paying for a task.
                    block = self.graph.block(ready[0])
                    output = await self.run_block(block, scope, frame)
                    scope.set(block.name, output)
                    outputs[block.name] = output
                    sorter.done(block.id)
                    continue
                for block_id in ready:
                    block = self.graph.block(block_id)
                    running[asyncio.ensure_future(run_and_wake(block))] = block
                done = [task for task in running if task.done()]
                while not done:
                    waiter = asyncio.get_running_loop().create_future()
                    await waiter
                    done = [task for task in running if task.done()]
                for task in done:
                    block = running.pop(task)
                    if task.exception() is not None and running:
                        await self._settle(running, frame, block, task.exception())
                    output = task.result()
                    scope.set(block.name, output)
                    outputs[block.name] = output
                    sorter.done(block.id)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return outputs

    async def _settle(
        self,
        running: dict[asyncio.Task[Any], Block],
        frame: ItemFrame,
        failed: Block,
        error: BaseException | None,
    ) -> None:
        """`failed` failed, so nothing more starts at this level; the steps still in flight
        finish rather than being cancelled: their calls are made (and paid) already, and their
        stored outputs spare a retry from making them again. A loop in flight is a sibling
        like any other: its items in flight finish (their failures are their own), and it
        starts no more, recording them not started because `failed` failed (`halts`). A
        failure among them adds nothing to the first one. Anything else than a step's failure
        (the process stopping, a crash) cancels the loops in flight, as before."""
        halting = isinstance(error, StepFailed)
        if halting:
            where = f"{frame.key} failed at {failed.name}" if frame.key else f"{failed.name} failed"
            self.halts[frame.key] = where
        else:
            for task, block in running.items():
                if block.is_loop:
                    task.cancel()
        try:
            await asyncio.gather(*running, return_exceptions=True)
        finally:
            if halting:
                self.halts.pop(frame.key, None)

    async def run_block(self, block: Block, scope: Scope, frame: ItemFrame) -> Any:
        skipped = self._skip_reason(block, scope, frame)
        stored = None
        if skipped is None and not block.is_loop:
            stored = self.memo.take_step(frame.key, block.id)
        permits = frame.permits if skipped is None and stored is None else None
        if permits is not None:
            if not permits.claim_ahead(frame.key, block.id):  # the item took it to start
                await permits.take(block.id)  # before it starts: the wait is not its duration
        elif frame.permits is not None:
            frame.permits.release_ahead(frame.key, block.id)  # nothing runs: no row to wait for
        try:
            return await self._run_block(block, scope, frame, skipped, stored)
        finally:
            if permits is not None:
                permits.give_back_when_stored(block.id)

    async def _run_block(
        self, block: Block, scope: Scope, frame: ItemFrame, skipped: str | None, stored: Any
    ) -> Any:
        started = time.monotonic()
        self.bus.emit("step.started", item=frame.key, block=block.id, name=block.name)
        if skipped is not None:
            return self._skip(block, skipped, frame)
        if stored is not None:
            return self._reuse(block, stored, frame)
        attempts = 0
        usage: list[dict[str, Any]] = []
        cached: dict[str, Any] = {}
        try:
            if block.is_loop:
                output = await run_loop(self, block, scope, frame)
                attempts = 1
            else:
                output, attempts, usage, cached = await self._run_simple(block, scope, frame)
                self.spend(usage)
            self.check_output_size(block, output, frame)
        except asyncio.CancelledError:
            self.bus.emit("step.cancelled", item=frame.key, block=block.id, name=block.name)
            raise
        except StepFailed as failure:
            self.bus.emit(
                "step.failed",
                item=frame.key,
                block=block.id,
                name=block.name,
                error=failure.message,
                attempts=max(attempts, failure.attempts),
                duration=time.monotonic() - started,
            )
            raise
        self.bus.emit(
            "step.finished",
            item=frame.key,
            block=block.id,
            name=block.name,
            # What the step row keeps: bounded (a loop's results are its items' own rows).
            output=stored_output(output, is_loop=block.is_loop),
            attempts=attempts,
            usage=usage,
            duration=time.monotonic() - started,
            **cached,
        )
        return output

    def spend(self, usage: list[dict[str, Any]]) -> None:
        """Add a step's calls to what the run spent; past the budget, loops stop starting
        items (engine/core/loop.py). Models without a price count $0."""
        budget, prices = self.options.budget_usd, self.options.prices
        if budget is None or prices is None or not usage:
            return
        for model, tokens in tally(usage).items():
            self.spent_usd += prices.cost(model, tokens.prompt, tokens.completion) or 0.0
        if not self.over_budget and self.spent_usd >= budget:
            self.over_budget = True
            self.bus.emit("run.budget", budget_usd=budget, spent_usd=round(self.spent_usd, 6))

    def budget_reason(self, not_started: int | None = None) -> str:
        said = (
            f"the run's budget of ${plain_dollars(self.options.budget_usd or 0.0)} was reached "
            f"(${self.spent_usd:.4f} spent)"
        )
        if not_started is None:
            return f"not started: {said}"
        return f"{said}: {not_started} item{'s' if not_started != 1 else ''} not started"

    def _skip_reason(self, block: Block, scope: Scope, frame: ItemFrame) -> str | None:
        """Why `block` does not run here: its `run_if` reference is empty (null, false, 0,
        "", [], {} or absent), or a block it follows at its level was skipped (a branch is
        skipped whole). None when it runs."""
        if self._skipped:
            for before in self._predecessors[block.parent].get(block.id, ()):
                if (frame.key, before) in self._skipped:
                    return f"skipped: {self.graph.block(before).name} was skipped"
        condition = block.config.get("run_if")
        if not isinstance(condition, str) or not condition.strip():
            return None
        try:
            value = render(condition, scope)
        except MissingReference:
            value = None
        if value is None or value is False or value in (0, "", [], {}):
            return f"skipped: run_if {condition.strip()} is empty"
        return None

    def _skip(self, block: Block, reason: str, frame: ItemFrame) -> dict[str, Any]:
        """A skipped block's step ends at once, succeeded, with `{skipped, reason}` as its
        output; the blocks after it at its level are skipped in turn."""
        self._skipped.add((frame.key, block.id))
        output = skipped_output(reason)
        self.bus.emit(
            "step.finished",
            item=frame.key,
            block=block.id,
            name=block.name,
            output=output,
            attempts=0,
            usage=[],
            duration=0.0,
        )
        return output

    def _reuse(self, block: Block, stored: StoredStep, frame: ItemFrame) -> Any:
        """A step that succeeded before: its stored output, recorded again, never re-run.
        Its row says as before whose calls it made: a resumed run's own (`usage`), or the
        retried run's (`cache` "reused", `saved_usage`), which this run's cost leaves out."""
        self.check_output_size(block, stored.output, frame)
        self.reused_steps += 1
        cached = {"cache": stored.cache, "saved_usage": stored.saved_usage} if stored.cache else {}
        self.bus.emit(
            "step.finished",
            item=frame.key,
            block=block.id,
            name=block.name,
            output=stored.output,
            attempts=stored.attempts,
            usage=stored.usage,
            duration=stored.duration,
            reused=True,
            **cached,
        )
        return stored.output

    def sizes(self, frame: ItemFrame) -> SizeMeter:
        """The meter for outputs made in `frame`."""
        return frame.sizes if frame.sizes is not None else self.output_sizes

    def check_output_size(self, block: Block, output: Any, frame: ItemFrame = TOP) -> None:
        """Every output is measured before it is recorded (events, rows, later blocks)."""
        try:
            self.sizes(frame).check(output)
        except BlockError as exc:
            raise StepFailed(block, str(exc)) from None

    async def _run_simple(
        self, block: Block, scope: Scope, frame: ItemFrame
    ) -> tuple[dict[str, Any], int, list[dict[str, Any]], dict[str, Any]]:
        """The output, attempts made, the calls' usage, and what the result cache did
        (`{"cache": "hit", "saved_usage": …}` or `{"cache": "miss"}`; empty when unused)."""
        spec = self.registry[block.type]
        raw = dict(block.config)
        try:
            rendered = render_config(spec, raw, scope)
        except MissingReference as exc:
            raise StepFailed(block, str(exc)) from None
        cache = getattr(self.services, "result_cache", None)
        ttl = cache_ttl(raw, block.type) if cache is not None else None
        key = ""
        if cache is not None and ttl is not None:
            try:
                resolved = {
                    k: render(raw[k], scope) if k in spec.raw_fields else v
                    for k, v in rendered.items()
                }
            except MissingReference as exc:
                raise StepFailed(block, str(exc)) from None
            key = cache_key(block.type, resolved, self.env)
            hit = await cache.get(key)
            if hit is not None:
                return hit.output, 0, [], {"cache": "hit", "saved_usage": hit.usage}
        attempts_made = 0
        usage: list[dict[str, Any]] = []

        async def attempt(number: int) -> dict[str, Any]:
            nonlocal attempts_made
            attempts_made = number
            ctx = BlockContext(
                block.id,
                block.name,
                rendered,
                raw,
                scope,
                self.services,
                number,
                usage,
                self.trigger_input,
                self.bus.redactor,
                self.options.max_output_bytes,
                self.sizes(frame),
                input_checked=self.options.input_checked,
            )
            # Transports classify their own failures (engine/core/errors.py): here only
            # BlockError, TransientError and TimeoutError mean anything.
            return await spec.run(ctx)

        def on_retry(number: int, delay: float, error: TransientError) -> None:
            self.bus.emit(
                "step.retrying",
                item=frame.key,
                block=block.id,
                name=block.name,
                attempt=number,
                delay=round(delay, 3),
                error=str(error),
            )

        timeout = float(raw.get("timeout") or self.options.block_timeout)
        # Provider governance (providers.py) tells this step when its calls wait.
        step = CURRENT_STEP.set(StepTag(frame.key, block.id, block.name, self.bus, self.share))
        try:
            output = await call_with_retry(
                self.options.retry.for_block(raw.get("retry")),
                attempt,
                attempt_timeout=timeout,
                on_retry=on_retry,
                rng=self.rng,
            )
        except (BlockError, MissingReference) as exc:
            raise StepFailed(block, str(exc), attempts_made) from None
        except Exception as exc:  # an ordinary bug in one block fails that step, not the run
            raise StepFailed(block, f"{type(exc).__name__}: {exc}", attempts_made) from None
        finally:
            CURRENT_STEP.reset(step)
        if cache is None or ttl is None:
            return output, attempts_made, usage, {}
        if self.bus.redactor.value(output) is not output:
            # It holds a secret's value (an upstream echoed it): never kept in the cache.
            return output, attempts_made, usage, {"cache": "miss"}
        await cache.put(key, block.type, output, usage, ttl)
        return output, attempts_made, usage, {"cache": "miss"}


def skipped_output(reason: str) -> dict[str, Any]:
    """What a step skipped by `run_if` outputs (and how a reader tells it apart)."""
    return {"skipped": True, "reason": reason}


def is_skipped_output(output: Any) -> bool:
    return (
        isinstance(output, dict)
        and output.keys() == {"skipped", "reason"}
        and output["skipped"] is True
        and isinstance(output["reason"], str)
        and output["reason"].startswith("skipped: ")
    )


def render_config(spec: BlockType, config: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """A block's config with its references substituted, except the fields the block
    renders itself (`raw_fields`), expressions and `run_if` (read before the block runs);
    raises MissingReference."""
    return {
        key: value
        if key in spec.raw_fields or key in spec.expression_fields or key == "run_if"
        else render(value, scope)
        for key, value in config.items()
    }


def _as_chain(predecessors: Mapping[str, Set[str]]) -> list[str] | None:
    """The blocks in order when they form one straight line (or a single block), else None."""
    if any(len(p) > 1 for p in predecessors.values()):
        return None
    heads = [b for b, p in predecessors.items() if not p]
    if len(heads) != 1:
        return None if heads else []
    successors: dict[str, list[str]] = {b: [] for b in predecessors}
    for block, preds in predecessors.items():
        for pred in preds:
            successors[pred].append(block)
    order, current = [], heads[0]
    while True:
        order.append(current)
        following = successors[current]
        if not following:
            break
        if len(following) > 1:
            return None
        current = following[0]
    return order if len(order) == len(predecessors) else None


def plain_dollars(value: float) -> str:
    """Dollars as a person writes them: 2.5, 0.000001 (never 1e-06), at most 6 decimals."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
