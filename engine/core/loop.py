"""The Loop block: runs its body once per item on a sliding window, or in waves.

`max_concurrent` workers pull the next item the moment they finish one, so a slow item never
holds back a wave. With `batch_size` the items run in waves instead: the window runs over one
batch at a time and no item of batch k+1 starts before every item of batch k has ended.
Item failures are recorded on the item and never cancel siblings (nor later batches).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.core import expression_pool
from engine.core.distribution import ChunkSpan
from engine.core.errors import BlockError
from engine.core.expressions import (
    NamedExpressionFailed,
    compile_expression,
    search,
    search_each_async,
)
from engine.core.give_way import give_way
from engine.core.graph import Block
from engine.core.in_flight import HELD, Place
from engine.core.loop_policies import ConcurrencyGate, breaker_policy
from engine.core.loop_state import LoopState
from engine.core.memo import Memo
from engine.core.preconnect import open_first_connections
from engine.core.providers import BREAKER_POLICY
from engine.core.refs import MissingReference, Scope, render
from engine.core.result_needs import Need, prune, results_need
from engine.core.sizes import BLOCK_OUTPUT, DEFAULT_MAX_OUTPUT_BYTES, SizeMeter
from engine.core.slots import item_slot
from engine.core.step_permits import StepPermits

if TYPE_CHECKING:
    from engine.core.executor import Executor, ItemFrame

DEFAULT_MAX_CONCURRENT = 10
# A loop whose every item failed: "fail" ends the run there; "continue" runs the blocks
# after it (a failure report), and the run ends failed all the same.
ON_ALL_FAILED = ("fail", "continue")
_PENDING: Any = object()  # a `results` slot whose item has not succeeded (yet)


def loop_cap(executor: Executor, block: Block) -> int:
    config = block.config
    if executor.options.sequential or config.get("execution", "parallel") == "sequential":
        return 1
    if executor.options.max_concurrent:
        return max(1, executor.options.max_concurrent)
    return max(1, int(config.get("max_concurrent") or DEFAULT_MAX_CONCURRENT))


def entry_need(executor: Executor, block: Block) -> Need | None:
    """What each `results` entry keeps, worked out once per loop block and run."""
    needs = executor.results_needs
    if block.id not in needs:
        parent = executor.graph.by_id.get(block.parent) if block.parent else None
        enclosing = entry_need(executor, parent) if parent is not None else None
        try:
            parsed = {
                name: compile_expression(expression)
                for name, expression in (block.config.get("aggregations") or {}).items()
            }
        except BlockError:  # fails with its message when evaluated; until then keep all
            needs[block.id] = Need(whole=True)
        else:
            needs[block.id] = results_need(executor.graph, block, parsed, enclosing)
    need: Need | None = needs[block.id]
    return need


class _OrderAbandoned(Exception):  # noqa: N818 -- a stop, not an error
    """The ordering's awaiting step ended (timeout, cancel): the thread stops sorting."""


def dispatch_order(
    items: list[Any],
    priority: str | None,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    cancel: threading.Event | None = None,
) -> list[int]:
    """Indexes in the order items start: by descending priority when configured.

    Items are data from outside: a priority that fails to evaluate, or a number no float can
    hold (10**400, ±inf, NaN), sorts last instead of failing the run. Anything else that is
    not a number counts as 0, as before. Once `cancel` is set the evaluation stops (at its
    next value) and `_OrderAbandoned` is raised. Evaluates user expressions over user data:
    off the event loop only (`dispatch_order_async`).
    """
    order = list(range(len(items)))
    if priority:
        expression = compile_expression(priority)

        def key(index: int) -> tuple[int, float]:
            if cancel is not None and cancel.is_set():
                raise _OrderAbandoned
            try:
                value = search(expression, items[index], max_bytes=max_bytes, cancel=cancel)
            except BlockError:
                if cancel is not None and cancel.is_set():
                    raise _OrderAbandoned from None
                return (1, 0.0)
            if not isinstance(value, int | float):
                return (0, 0.0)
            try:
                number = float(value)
            except OverflowError:
                return (1, 0.0)
            return (0, -number) if math.isfinite(number) else (1, 0.0)

        order.sort(key=key)
    return order


class PriorityTooSlow(Exception):  # noqa: N818 -- a verdict, caught by the loop
    """The `priority` ordering ran past its time."""


async def dispatch_order_async(
    items: list[Any], priority: str | None, max_bytes: int, seconds: float, owner: str = ""
) -> list[int]:
    """`dispatch_order` on the expression threads as `owner`'s evaluation (like transforms
    and aggregations, engine/core/expression_pool.py), so a costly `priority` expression
    never holds the event loop (every run on it): at most `seconds` (PriorityTooSlow past
    them), and stopped at its next value when the awaiting step is cancelled (a queued
    ordering never runs)."""
    if not priority:
        return list(range(len(items)))
    cancel = threading.Event()
    future = expression_pool.POOL.submit(owner, dispatch_order, items, priority, max_bytes, cancel)
    try:
        async with asyncio.timeout(seconds):
            return await asyncio.wrap_future(future)
    except TimeoutError:
        raise PriorityTooSlow from None
    finally:
        cancel.set()


def distributable(executor: Executor, block: Block, frame: ItemFrame, total: int, cap: int) -> bool:
    """Whether this loop's items go out in chunks to other workers: a top-level loop, when a
    distributor wants it, whose settings hold per item rather than across the batch (a
    fail-fast stop and adaptive concurrency count the batch's outcomes as they happen, a
    `circuit_breaker` policy keeps its calls on one process's provider breaker, and waves
    (`batch_size`) order the whole batch, so those loops run on the coordinator), and whose
    chunks can rebuild its scope from stored outputs (a loop's stored output keeps counts,
    not results)."""
    config = block.config
    if executor.distributor is None or frame.key or cap <= 1:
        return False
    if config.get("fail_fast") or config.get("circuit_breaker") or config.get("adaptive"):
        return False
    if config.get("batch_size") or executor.options.budget_usd is not None:
        return False  # waves order the whole batch; a budget counts the run's spending
    if executor.options.sample_items:
        return False  # an estimate's few items
    if any(executor.graph.block(b).is_loop for b in executor.top_upstream(block.id)):
        return False
    return executor.distributor.wants(block, total)


# A distributed loop composes its output from its items' stored steps this many items at a
# time, so the coordinator holds one slice's whole outputs (plus the pruned `results`), not
# the whole batch's.
COMPOSE_SLICE = 1000


def compose_from_memo(
    executor: Executor,
    block: Block,
    frame: ItemFrame,
    items: list[Any],
    memo: Memo,
    need: Need | None,
    results: list[Any],
    failures: list[dict[str, Any]],
    indexes: range | None = None,
) -> bool:
    """A distributed loop's `results` and `failed` (for the items of `indexes`, default all)
    straight from what its chunks stored, without running or recording anything again
    (their rows are written already): when every one of those items is in the memo and the
    loop's body has no inner loop (whose output is rebuilt by running it). False, with
    nothing changed, when it cannot."""
    body = executor.graph.children(block.id)
    if any(b.is_loop for b in body):
        return False
    indexes = range(len(items)) if indexes is None else indexes
    keys = [
        (index, f"{frame.key}/{block.name}[{index}]" if frame.key else f"{block.name}[{index}]")
        for index in indexes
    ]
    for _, key in keys:
        if key in memo.failures:
            continue
        if any((key, b.id) not in memo.steps for b in body):
            return False
    failed = 0
    for index, key in keys:
        failure = memo.take_failure(key)
        if failure is not None:
            failures.append(
                {
                    "index": index,
                    "item": items[index],
                    "block": failure.block,
                    "error": failure.error,
                }
            )
            failed += 1
            continue
        outputs = {}
        for b in body:
            stored = memo.take_step(key, b.id)
            assert stored is not None  # noqa: S101 -- checked above
            outputs[b.name] = stored.output
        results[index] = prune({"index": index, "item": items[index], "outputs": outputs}, need)
    executor.failed_items += failed
    return True


async def run_loop(
    executor: Executor,
    block: Block,
    scope: Scope,
    frame: ItemFrame,
    *,
    span: ChunkSpan | None = None,
) -> dict[str, Any]:
    """Run the loop's items and compose its output; with `span`, run only that chunk of
    a distributed loop (engine/core/distribution.py) and compose nothing."""
    from engine.core.executor import StepFailed

    try:
        items = render(block.config.get("items"), scope)
    except MissingReference as exc:
        raise StepFailed(block, str(exc)) from None
    if not isinstance(items, list):
        kind = "null" if items is None else type(items).__name__
        raise StepFailed(block, f"items must resolve to a list, got {kind}")
    loop_run = LoopRun(executor, block, scope, frame, items, span)
    try:
        return await loop_run.run()
    finally:
        loop_run.progress_now()  # its last counts come before its step's end, whatever it was


class _Window:
    """One sliding window's indexes, taken in order, and its live workers."""

    __slots__ = ("_changed", "halted", "indexes", "live", "next")

    def __init__(self, indexes: list[int], halted: Callable[[], bool]) -> None:
        self.indexes = indexes
        self.halted = halted
        self.next = 0
        self.live = 0
        self._changed: asyncio.Future[None] | None = None

    def left(self) -> int:
        return len(self.indexes) - self.next

    def given_up(self) -> bool:
        """No more workers needed: every index went, or the loop halted."""
        return not self.left() or self.halted()

    def changed(self) -> asyncio.Future[None]:
        """Resolves at the next `poke` (a worker ended, the limit moved)."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def poke(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    def take(self) -> int | None:
        if self.next >= len(self.indexes):
            return None
        index = self.indexes[self.next]
        self.next += 1
        return index


class LoopRun:
    """One execution of a Loop block over its items: the sliding window (or waves), the
    retry passes over failed items, and its composed output. What it decides as it goes and
    its rows do not say — adaptive concurrency's limit, the retry passes done, the batch
    begun — is its `LoopState`, published as `loop.state` (a top-level loop's is kept with
    the run, `Run.loops[<id>].state`) and restored when the run resumes, so a resume goes on
    from there instead of starting over."""

    def __init__(
        self,
        executor: Executor,
        block: Block,
        scope: Scope,
        frame: ItemFrame,
        items: list[Any],
        span: ChunkSpan | None,
    ) -> None:
        from engine.core.executor import StepFailed

        self.executor = executor
        self.block = block
        self.scope = scope
        self.frame = frame
        self.items = items
        self.span = span
        self.bus = executor.bus
        config = block.config
        self.variable = str(config.get("variable") or "item")
        self.fail_fast = bool(config.get("fail_fast", False))
        self.continue_all_failed = config.get("on_all_failed") == "continue"
        self.batch_size = int(config.get("batch_size") or 0)
        self.retry_passes = int(config.get("retry_failed") or 0)
        self.cap = loop_cap(executor, block)
        self.total = len(items)
        # Per succeeded item, what later blocks can read of `{index, item, outputs}`: all of
        # it when read whole, a projection, or None when nobody reads `results`.
        self.need = entry_need(executor, block)
        self.outer_sizes = executor.sizes(frame)
        self.results: list[Any] = [_PENDING] * self.total
        self.failures: list[dict[str, Any]] = []
        self.counts = {"succeeded": 0, "failed": 0, "running": 0, "cancelled": 0}
        self.counts["not_started"] = 0
        self.not_started_reason = ""  # why the last items recorded not started never began
        self.peak_running = 0
        self.reusing = 0  # items in flight whose steps are all reused (not work: no peak)
        self._progress_due: asyncio.Handle | None = None  # progress(): its event, this turn
        self.begun: set[int] = set()
        self.pending: list[int] = []
        self.stop = asyncio.Event()
        self.gate = ConcurrencyGate(self.cap, config.get("adaptive"))
        # Its body's steps hold a permit until their rows are stored: a crash repeats at
        # most the cap's worth of each block's calls (engine/core/step_permits.py).
        durability = getattr(executor.services, "durability", None)
        self.permits = StepPermits(self.cap, durability) if durability is not None else None
        self.first_step = executor.first_step(block.id) if self.permits is not None else None
        # Only a top-level loop's state is kept with the run: an inner loop runs again with
        # its item when the item resumes.
        self.keeps_state = not frame.key and span is None
        restored = executor.memo.take_loop_state(block.id) if self.keeps_state else None
        self.state = restored or LoopState()
        if restored is not None and restored.limit is not None:
            self.gate.restore(restored.limit)
        # The loop's `circuit_breaker` is the provider breaker's policy for its items' calls.
        try:
            self.breaker = breaker_policy(
                config.get("circuit_breaker"),
                executor.services.outbound.providers.settings.breaker,
            )
        except ValueError as exc:
            raise StepFailed(block, str(exc)) from None

    # -- what it tells ------------------------------------------------------------------

    def item_key(self, index: int) -> str:
        name = self.block.name
        return f"{self.frame.key}/{name}[{index}]" if self.frame.key else f"{name}[{index}]"

    def progress(self) -> None:
        """The counts changed: one `progress` event says so, for everything that changed
        in this turn of the event loop (items start and end by the dozen per turn; an event
        each was a third of a loop's events, and of the store's work folding them). The
        highest `running` seen goes with it, so the peak is not lost between two events."""
        self.peak_running = max(self.peak_running, self.counts["running"] - self.reusing)
        if self._progress_due is None:
            self._progress_due = asyncio.get_running_loop().call_soon(self.progress_now)

    def progress_now(self) -> None:
        """The `progress` event due, now (at once when nothing is due but counts changed)."""
        due, self._progress_due = self._progress_due, None
        if due is None:
            return
        due.cancel()
        self.bus.emit(
            "progress",
            loop=self.block.id,
            item=self.frame.key,
            total=self.total,
            cap=self.cap,
            peak_running=self.peak_running,
            **self.counts,
        )

    def save_state(self) -> None:
        """Publish the state after a decision (the store keeps a top-level loop's)."""
        if self.keeps_state:
            self.bus.emit("loop.state", loop=self.block.id, state=self.state.as_dict())

    def record_not_started(self, reason: str) -> None:
        """Items that never began are rows too (`not_started`, with the reason), in one
        event, so the header, the counters and the item list agree after a cancel."""
        mine = range(self.total) if self.span is None else self.pending
        indexes = [i for i in mine if i not in self.begun]
        if not indexes:
            return
        self.counts["not_started"] += len(indexes)
        self.not_started_reason = reason
        frame, block = self.frame, self.block
        self.bus.emit(
            "items.not_started",
            loop=block.id,
            parent=frame.key,
            prefix=f"{frame.key}/{block.name}" if frame.key else block.name,
            indexes=indexes,
            data=[self.items[i] for i in indexes],
            error=reason,
        )
        self.progress()

    def record_failure(self, index: int, block_name: str | None, error: str) -> None:
        self.failures.append(
            {"index": index, "item": self.items[index], "block": block_name, "error": error}
        )
        self.counts["failed"] += 1
        self.executor.failed_items += 1

    # -- one item -----------------------------------------------------------------------

    async def run_item(self, index: int, key: str) -> bool | None:
        """True when the item succeeded, False when it failed, None when the process is
        stopping and the item was left unfinished (it resumes from its first unfinished
        step). `key`: its `item_key`."""
        executor, block, bus = self.executor, self.block, self.bus
        item = self.items[index]
        earlier = executor.memo.take_failure(key)
        if earlier is not None:  # resumed run: this item's failure was recorded and stands
            self.begun.add(index)
            self.record_failure(index, earlier.block, earlier.error)
            bus.emit(
                "item.failed",
                item=key,
                loop=block.id,
                parent=self.frame.key,
                index=index,
                data=item,
                block=earlier.block,
                error=earlier.error,
            )
            self.progress()
            return False
        permits, first = self.permits, self.first_step
        if permits is None or first is None or executor.memo.settled(key):
            return await self._run_begun(index, item, key)
        await permits.take_ahead(key, first)  # an item waiting for it is not running yet
        try:
            if self.halted() or executor.over_budget:
                return None  # not begun: it starts on resume (or never)
            return await self._run_begun(index, item, key)
        finally:
            permits.release_ahead(key, first)  # unless its step took it

    async def _run_begun(self, index: int, item: Any, key: str) -> bool | None:
        from engine.core.executor import Interrupted, ItemFrame, StepFailed

        executor, block, bus, counts = self.executor, self.block, self.bus, self.counts
        iteration = {"index": index, "item": item}
        item_scope = self.scope.child(
            {self.variable: item, "loop": iteration, block.name: iteration}
        )
        started = time.monotonic()
        self.begun.add(index)
        counts["running"] += 1
        # An item that succeeded before (resumed run, retry) keeps who ran it and when.
        done = executor.memo.take_done(key)
        # Reused whole (a retry's, a resume's): in flight for an instant, never in the peak.
        reused = done is not None
        if reused:
            self.reusing += 1
        extra = {"worker": done.worker, "started_at": done.started_at} if done else {}
        bus.emit(
            "item.started",
            item=key,
            loop=block.id,
            parent=self.frame.key,
            index=index,
            data=item,
            **extra,
        )
        self.progress()  # so `running` counts items in flight, not only finished ones
        sizes = SizeMeter(executor.options.max_output_bytes, BLOCK_OUTPUT)
        try:
            frame = ItemFrame(key, sizes, self.permits)
            outputs = await executor.run_level(block.id, item_scope, frame)
        except asyncio.CancelledError:
            # The run was cancelled (or a sibling task crashed): the item row must not stay
            # "running" forever.
            self._stopped_running(reused)
            counts["cancelled"] += 1
            bus.emit(
                "item.cancelled",
                item=key,
                loop=block.id,
                index=index,
                error="cancelled while running: the run was cancelled",
            )
            raise
        except Interrupted:
            self._stopped_running(reused)
            return None
        except StepFailed as failure:
            self._stopped_running(reused)
            self.record_failure(index, failure.block.name, failure.message)
            bus.emit(
                "item.failed",
                item=key,
                loop=block.id,
                index=index,
                block=failure.block.name,
                error=failure.message,
                duration=time.monotonic() - started,
            )
            if self.fail_fast:
                self.stop.set()
            self.progress()
            return False
        self._stopped_running(reused)
        counts["succeeded"] += 1
        entry = {"index": index, "item": item, "outputs": outputs}
        if self.need is not None and self.need.whole:
            # Measured now, with the item's meter that knows its outputs, so measuring the
            # loop's output at the end costs nothing more.
            with contextlib.suppress(BlockError):  # too big: the loop's check says so
                self.outer_sizes.remember(entry, sizes.measure(entry))
        self.results[index] = prune(entry, self.need)
        duration = time.monotonic() - started
        if done is not None and done.duration is not None and done.started_at is not None:
            extra = {"duration": done.duration, "finished_at": done.started_at + done.duration}
        else:
            extra = {"duration": duration}
        bus.emit("item.finished", item=key, loop=block.id, index=index, **extra)
        self.progress()
        return True

    def _stopped_running(self, reused: bool) -> None:
        self.counts["running"] -= 1
        if reused:
            self.reusing -= 1

    # -- the window and the waves -------------------------------------------------------

    def halted(self) -> bool:
        """No more items start: `fail_fast`, the process stopping, or a sibling step of the
        item this loop runs in failed (`Executor.halts`)."""
        executor = self.executor
        return (
            self.stop.is_set()
            or executor.stopping
            or executor.refused is not None
            or self.frame.key in executor.halts
        )

    async def run_window(self, indexes: list[int]) -> None:
        """The sliding window over `indexes`: workers pull the next index the moment they
        finish one. A worker is created only once it holds one of the run's places
        (engine/core/in_flight.py; the first may be borrowed from the item this loop runs
        in), so nested loops never create more workers than the run's items in flight,
        and each creation gives the event loop (a cancel, other runs) its turn."""
        window = _Window(indexes, self._window_halted)
        places = self.executor.places

        def give_up() -> bool:  # or the item's place became free to borrow (a sibling
            return window.given_up() or places.lendable()  # inner loop gave it back)

        async with asyncio.TaskGroup() as group:
            while window.left() and not self._window_halted():
                if window.live >= self.gate.limit:
                    await window.changed()  # a worker ended, or the limit moved
                    continue
                place = places.borrow()
                if place is None:
                    place = await places.take_unless(give_up, window.changed)
                    if place is None:
                        continue  # the items went meanwhile, the loop halted, or a borrow
                if not window.left() or self._window_halted():
                    await places.give_back(place)
                    break
                window.live += 1
                group.create_task(self._window_worker(window, place))
                await give_way()

    def _window_halted(self) -> bool:
        return self.halted() or self.executor.over_budget

    async def _window_worker(self, window: _Window, place: Place) -> None:
        executor, gate, places = self.executor, self.gate, self.executor.places
        HELD.set(place)  # this worker task's items' inner loops borrow it
        if self.breaker is not None:
            BREAKER_POLICY.set(self.breaker)  # this worker task's own context
        try:
            # Pulling from a shared window is the sliding window: no await between takes.
            while not self.halted():
                ticket = await gate.acquire()
                if executor.over_budget:  # the run's budget: no more items start
                    await gate.release(None)
                    return
                index = window.take()
                if index is None or self.halted():
                    await gate.release(None)
                    return
                outcome: bool | None = False
                try:
                    # With workers, one of the loop's slots held across processes
                    # (engine/core/slots.py), waited for before the item starts (the
                    # process's share came with the place).
                    key = self.item_key(index)
                    settled = executor.memo.settled(key)  # reused: no slot
                    slot = item_slot(
                        executor.services,
                        self.block.id,
                        self.frame.key,
                        self.cap,
                        needed=not settled,
                    )
                    if isinstance(slot, contextlib.nullcontext):
                        outcome = await self._start(index, key)  # nothing to hold (inline)
                    else:
                        async with slot:
                            outcome = await self._start(index, key)
                finally:
                    limit = await gate.release(outcome, ticket)
                if outcome is None:
                    return
                if limit is not None:
                    self.bus.emit(
                        "loop.concurrency", loop=self.block.id, item=self.frame.key, limit=limit
                    )
                    self.state.limit = limit
                    self.save_state()
                    window.poke()
                if not place.borrowed and (places.contended() or window.live > gate.limit):
                    return  # its place goes to whoever waits (another loop, this one's next)
                await give_way()  # items that never suspend must not keep the loop
        finally:
            window.live -= 1
            window.poke()
            await places.give_back(place)

    async def _start(self, index: int, key: str) -> bool | None:
        if self.halted() or self.executor.over_budget:
            return None  # not begun: it starts on resume (or never)
        return await self.run_item(index, key)

    async def run_waves(self, indexes: list[int]) -> None:
        """The sliding window over all of `indexes`, or over one batch at a time."""
        if self.batch_size <= 0:
            await self.run_window(indexes)
            return
        size = self.batch_size
        waves = [indexes[i : i + size] for i in range(0, len(indexes), size)]
        for number, wave in enumerate(waves, 1):
            if self.halted() or self.executor.over_budget:
                return
            self.bus.emit(
                "loop.batch",
                loop=self.block.id,
                item=self.frame.key,
                batch=number,
                batches=len(waves),
                size=len(wave),
            )
            await self.run_window(wave)

    # -- the whole loop -----------------------------------------------------------------

    async def fan_out(self) -> None:
        """Every item runs elsewhere; what they did comes back as a memo, and the window
        then only reuses it: outputs and aggregations as if run here."""
        executor, block, frame = self.executor, self.block, self.frame
        assert executor.distributor is not None  # noqa: S101 -- checked by distributable

        def report(chunk_counts: dict[str, int]) -> None:
            self.bus.emit(
                "progress",
                loop=block.id,
                item=frame.key,
                total=self.total,
                cap=self.cap,
                **chunk_counts,
            )

        distributor = executor.distributor
        await distributor.fan_out(block, self.items, self.pending, report)
        if await self.compose_stored():
            self.counts.update(succeeded=self.total - len(self.failures), failed=len(self.failures))
            self.begun.update(range(self.total))
            self.pending = []  # done, and retried within their chunks already
        else:  # inner loops (their outputs are rebuilt by running): reuse item by item
            executor.memo.absorb(await distributor.stored(block, None))

    async def compose_stored(self) -> bool:
        """`results` and `failed` from the items' stored steps, `COMPOSE_SLICE` items at a
        time; False, with nothing composed, when an item's steps are not all stored (or the
        body has an inner loop)."""
        executor, block = self.executor, self.block
        assert executor.distributor is not None  # noqa: S101 -- fanned out
        if any(b.is_loop for b in executor.graph.children(block.id)):
            return False
        # Nobody reads `results` (nor an aggregation): the steps' outputs stay unread, and
        # what is read of them (which are stored) is small enough to take in one slice.
        size = COMPOSE_SLICE if self.need is not None else max(self.total, 1)
        for start in range(0, self.total, size):
            indexes = range(start, min(start + size, self.total))
            stored = await executor.distributor.stored(
                block, indexes, outputs=self.need is not None
            )
            if not compose_from_memo(
                executor,
                block,
                self.frame,
                self.items,
                stored,
                self.need,
                self.results,
                self.failures,
                indexes,
            ):
                executor.failed_items -= len(self.failures)
                self.failures.clear()
                self.results[:] = [_PENDING] * self.total
                return False
        return True

    async def run(self) -> dict[str, Any]:
        from engine.core.executor import Interrupted, StepFailed

        executor, block = self.executor, self.block
        self.count_items()
        self.progress()
        self.progress_now()  # its total at once, whatever it takes to order and start items
        try:
            self.pending = await dispatch_order_async(
                self.items,
                block.config.get("priority"),
                executor.options.max_output_bytes,
                executor.options.block_timeout,
                executor.share.owner.owner,
            )
        except PriorityTooSlow:
            raise StepFailed(
                block,
                f"priority: ordering its {self.total} items took longer than "
                f"{executor.options.block_timeout:g} s (KLYNTOS_BLOCK_TIMEOUT); "
                "simplify the loop's `priority` expression",
            ) from None
        # An estimate (RunOptions.sample_items): a top-level loop runs its first items only.
        sample = executor.options.sample_items if not self.frame.key and self.span is None else None
        fanned_out = False
        if sample and sample < len(self.pending):
            self.pending = self.pending[:sample]
        if self.span is not None:
            self.pending = list(self.span.indexes)
        elif executor.distributor is not None and distributable(
            executor, block, self.frame, self.total, self.cap
        ):
            await self.fan_out()
            fanned_out = True
        if not fanned_out and not self.frame.key and self.pending:  # not per item of an outer loop
            width = min(
                self.gate.cap,
                executor.places.limit,
                len(self.pending),
                self.batch_size or len(self.pending),
            )
            await open_first_connections(executor, block, width)
        if self.state:  # restored: kept with the run again (its new store starts empty)
            self.save_state()
        try:
            await self.run_waves(self.pending)
            await self.retry_failed_items()
        except asyncio.CancelledError:
            if not executor.stopping:  # a stop past the drain time is no cancel: it resumes
                self.record_not_started("not started: the run was cancelled before this item began")
            raise
        if executor.stopping:
            raise Interrupted
        if executor.refused is not None:  # the run's items past its limit: it fails
            if not self.frame.key:  # an inner loop's items go with their failed parent
                self.record_not_started(f"not started: {executor.refused}")
            self.begun.update(range(self.total))
            raise StepFailed(block, f"stopped: {executor.refused}")
        halt = executor.halts.get(self.frame.key)
        if halt is not None:  # a sibling step failed: the items in flight finished, no more
            self.record_not_started(f"not started: {halt}")
            self.begun.update(range(self.total))
            raise StepFailed(block, f"stopped: {halt}")
        if executor.over_budget and len(self.begun) < self.total:
            executor.budget_not_started += self.total - len(self.begun)
            self.record_not_started(executor.budget_reason())
            self.begun.update(range(self.total))  # recorded: nothing may record them again
        if sample and len(self.begun) < self.total:
            self.record_not_started(f"not started: an estimate runs the first {sample} items only")
            self.begun.update(range(self.total))
        if self.span is not None:
            return {}
        if self.fail_fast and self.failures:
            first_failed = min(f["index"] for f in self.failures)
            self.record_not_started(
                f"not started: fail_fast stopped the loop after item {first_failed} failed"
            )
        self.failures.sort(key=lambda f: f["index"])
        succeeded = [r for r in self.results if r is not _PENDING]
        if self.fail_fast and self.failures:
            first = self.failures[0]
            raise StepFailed(block, f"stopped after item {first['index']} failed: {first['error']}")
        # Every item failed (a run's budget may have left some not started: no failure).
        if self.total and not succeeded and len(self.failures) == self.total:
            message = f"all {self.total} items failed; first: {self.failures[0]['error']}"
            if not self.continue_all_failed:
                raise StepFailed(block, message)
            # The blocks after it run (a failure report is one of them); the run still
            # ends failed, with this loop's reason, when the loop is a top-level one.
            if not self.frame.key:
                self.executor.failed_loops.append(f"'{block.name}' failed: {message}")
        return await self.compose(succeeded)

    def count_items(self) -> None:
        """Count this loop's items (a chunk's: its own) into the run's, before any starts;
        past `max_items_per_run` the loop is refused and the whole run stops starting
        items (`Executor.refused`): nested loops of 1000 × 1000 × 1000 fail within the
        first thousands of items, with the reason, instead of being attempted."""
        from engine.core.executor import StepFailed

        executor, block = self.executor, self.block
        if executor.refused is not None:
            raise StepFailed(block, f"stopped: {executor.refused}")
        count = len(self.span.indexes) if self.span is not None else self.total
        limit = executor.options.max_items_per_run
        total = executor.items_counted + count
        if total > limit:
            executor.refused = (
                f"loop '{block.name}' refused: its {count:,} items would take the run to "
                f"{total:,} loop items (all loops, nested included), past the limit of "
                f"{limit:,} per run (KLYNTOS_MAX_ITEMS_PER_RUN)"
            )
            raise StepFailed(block, executor.refused)
        executor.items_counted = total

    async def retry_failed_items(self) -> None:
        """The brief's fail-safe strategy: failed items get another go once the batch is
        done, `retry_failed` passes at most — counted across resumes (`LoopState.passes`),
        so a run that stops and resumes never retries an item more often than that."""
        if not self.pending:
            return
        while self.state.passes < self.retry_passes:
            if self.halted() or not self.failures:
                return
            again = [f["index"] for f in self.failures]
            self.failures.clear()
            self.counts["failed"] -= len(again)
            self.executor.failed_items -= len(again)
            await self.run_waves(again)
            if self.executor.stopping:
                return  # the pass did not finish: it runs again on resume
            self.state.passes += 1
            self.save_state()

    async def compose(self, succeeded: list[Any]) -> dict[str, Any]:
        from engine.core.executor import StepFailed

        output: dict[str, Any] = {
            "results": succeeded,
            "count": self.total,
            "succeeded": len(succeeded),
            "failed": self.failures,
            # Items that never began (a budget, an estimate, fail_fast), and why: a report
            # after the loop can say the batch was not done whole.
            "not_started": self.counts["not_started"],
            "not_started_reason": self.not_started_reason,
        }
        aggregations = self.block.config.get("aggregations") or {}
        if aggregations:
            seconds = self.executor.options.block_timeout
            try:
                # Bounded like a transform: a costly aggregation over 100,000 results fails
                # the loop naming the limit instead of holding the run (and an expression
                # thread) for ever; the thread stops at its next value.
                async with asyncio.timeout(seconds):
                    await search_each_async(
                        aggregations,
                        output,
                        max_bytes=self.executor.options.max_output_bytes,
                        what="its result",
                        sizes=self.outer_sizes,
                    )
            except NamedExpressionFailed as exc:
                message = f"aggregation '{exc.name}' failed: {exc.error}"
                raise StepFailed(self.block, message) from None
            except TimeoutError:
                message = (
                    f"aggregations: computing {', '.join(map(repr, aggregations))} over "
                    f"{self.total} items took longer than {seconds:g} s "
                    "(KLYNTOS_BLOCK_TIMEOUT); simplify the expressions"
                )
                raise StepFailed(self.block, message) from None
        return output
