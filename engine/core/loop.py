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
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.core.distribution import ChunkSpan
from engine.core.errors import BlockError
from engine.core.expressions import compile_expression, search, search_async
from engine.core.give_way import give_way
from engine.core.graph import Block
from engine.core.loop_policies import ConcurrencyGate, breaker_policy
from engine.core.memo import Memo
from engine.core.providers import BREAKER_POLICY
from engine.core.refs import MissingReference, Scope, render
from engine.core.result_needs import Need, prune, results_need
from engine.core.sizes import DEFAULT_MAX_OUTPUT_BYTES, SizeMeter
from engine.core.slots import item_slot

if TYPE_CHECKING:
    from engine.core.executor import Executor, ItemFrame

DEFAULT_MAX_CONCURRENT = 10
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


def dispatch_order(
    items: list[Any], priority: str | None, max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
) -> list[int]:
    """Indexes in the order items start: by descending priority when configured.

    Items are data from outside: a priority that fails to evaluate, or a number no float can
    hold (10**400, ±inf, NaN), sorts last instead of failing the run. Anything else that is
    not a number counts as 0, as before.
    """
    order = list(range(len(items)))
    if priority:
        expression = compile_expression(priority)

        def key(index: int) -> tuple[int, float]:
            try:
                value = search(expression, items[index], max_bytes=max_bytes)
            except BlockError:
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


def compose_from_memo(
    executor: Executor,
    block: Block,
    frame: ItemFrame,
    items: list[Any],
    memo: Memo,
    need: Need | None,
    results: list[Any],
    failures: list[dict[str, Any]],
) -> bool:
    """A distributed loop's `results` and `failed` straight from what its chunks stored,
    without running or recording anything again (their rows are written already): when
    every item is in the memo and its body has no inner loop (whose output is rebuilt by
    running it). False, with nothing changed, when it cannot."""
    body = executor.graph.children(block.id)
    if any(b.is_loop for b in body):
        return False
    keys = [
        f"{frame.key}/{block.name}[{i}]" if frame.key else f"{block.name}[{i}]"
        for i in range(len(items))
    ]
    for key in keys:
        if key in memo.failures:
            continue
        if any((key, b.id) not in memo.steps for b in body):
            return False
    for index, key in enumerate(keys):
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
            continue
        outputs = {}
        for b in body:
            stored = memo.take_step(key, b.id)
            assert stored is not None  # noqa: S101 -- checked above
            outputs[b.name] = stored.output
        results[index] = prune({"index": index, "item": items[index], "outputs": outputs}, need)
    executor.failed_items += len(failures)
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
    from engine.core.executor import Interrupted, ItemFrame, StepFailed

    try:
        items = render(block.config.get("items"), scope)
    except MissingReference as exc:
        raise StepFailed(block, str(exc)) from None
    if not isinstance(items, list):
        kind = "null" if items is None else type(items).__name__
        raise StepFailed(block, f"items must resolve to a list, got {kind}")

    variable = str(block.config.get("variable") or "item")
    fail_fast = bool(block.config.get("fail_fast", False))
    cap = loop_cap(executor, block)
    total = len(items)
    # Per succeeded item, what later blocks can read of `{index, item, outputs}`: all of it
    # when read whole, a projection, or None when nobody reads `results`.
    need = entry_need(executor, block)
    outer_sizes = executor.sizes(frame)
    results: list[Any] = [_PENDING] * total
    failures: list[dict[str, Any]] = []
    counts = {"succeeded": 0, "failed": 0, "running": 0, "cancelled": 0, "not_started": 0}
    begun: set[int] = set()
    stop = asyncio.Event()
    bus = executor.bus

    def progress() -> None:
        bus.emit("progress", loop=block.id, item=frame.key, total=total, cap=cap, **counts)

    def record_not_started(reason: str) -> None:
        """Items that never began are rows too (`not_started`, with the reason), in one event,
        so the header, the counters and the item list agree after a cancel."""
        mine = range(total) if span is None else pending
        indexes = [i for i in mine if i not in begun]
        if not indexes:
            return
        counts["not_started"] += len(indexes)
        bus.emit(
            "items.not_started",
            loop=block.id,
            parent=frame.key,
            prefix=f"{frame.key}/{block.name}" if frame.key else block.name,
            indexes=indexes,
            data=[items[i] for i in indexes],
            error=reason,
        )
        progress()

    def record_failure(index: int, block_name: str | None, error: str) -> None:
        failures.append({"index": index, "item": items[index], "block": block_name, "error": error})
        counts["failed"] += 1
        executor.failed_items += 1

    async def run_item(index: int) -> bool | None:
        """True when the item succeeded, False when it failed, None when the process is
        stopping and the item was left unfinished (it resumes from its first unfinished step)."""
        item = items[index]
        key = f"{frame.key}/{block.name}[{index}]" if frame.key else f"{block.name}[{index}]"
        earlier = executor.memo.take_failure(key)
        if earlier is not None:  # resumed run: this item's failure was recorded and stands
            begun.add(index)
            record_failure(index, earlier.block, earlier.error)
            bus.emit(
                "item.failed",
                item=key,
                loop=block.id,
                parent=frame.key,
                index=index,
                data=item,
                block=earlier.block,
                error=earlier.error,
            )
            progress()
            return False
        iteration = {"index": index, "item": item}
        item_scope = scope.child({variable: item, "loop": iteration, block.name: iteration})
        started = time.monotonic()
        begun.add(index)
        counts["running"] += 1
        # An item that succeeded before (resumed run, retry) keeps who ran it and when.
        done = executor.memo.take_done(key)
        extra = {"worker": done.worker, "started_at": done.started_at} if done else {}
        bus.emit(
            "item.started",
            item=key,
            loop=block.id,
            parent=frame.key,
            index=index,
            data=item,
            **extra,
        )
        progress()  # so `running` counts items in flight, not only finished ones
        sizes = SizeMeter(executor.options.max_output_bytes, "the block's output")
        try:
            outputs = await executor.run_level(block.id, item_scope, ItemFrame(key, sizes))
        except asyncio.CancelledError:
            # The run was cancelled (or a sibling task crashed): the item row must not stay
            # "running" forever.
            counts["running"] -= 1
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
            counts["running"] -= 1
            return None
        except StepFailed as failure:
            counts["running"] -= 1
            record_failure(index, failure.block.name, failure.message)
            bus.emit(
                "item.failed",
                item=key,
                loop=block.id,
                index=index,
                block=failure.block.name,
                error=failure.message,
                duration=time.monotonic() - started,
            )
            if fail_fast:
                stop.set()
            progress()
            return False
        else:
            counts["running"] -= 1
            counts["succeeded"] += 1
            entry = {"index": index, "item": item, "outputs": outputs}
            if need is not None and need.whole:
                # Measured now, with the item's meter that knows its outputs, so measuring
                # the loop's output at the end costs nothing more.
                with contextlib.suppress(BlockError):  # too big: the loop's check says so
                    outer_sizes.remember(entry, sizes.measure(entry))
            results[index] = prune(entry, need)
            duration = time.monotonic() - started
            if done is not None and done.duration is not None and done.started_at is not None:
                extra = {"duration": done.duration, "finished_at": done.started_at + done.duration}
            else:
                extra = {"duration": duration}
            bus.emit("item.finished", item=key, loop=block.id, index=index, **extra)
            progress()
            return True

    gate = ConcurrencyGate(cap, block.config.get("adaptive"))
    # The loop's `circuit_breaker` is the provider breaker's policy for its items' calls.
    try:
        breaker = breaker_policy(
            block.config.get("circuit_breaker"),
            executor.services.outbound.providers.settings.breaker,
        )
    except ValueError as exc:
        raise StepFailed(block, str(exc)) from None

    async def run_window(indexes: list[int]) -> None:
        order: Iterator[int] = iter(indexes)

        async def worker() -> None:
            if breaker is not None:
                BREAKER_POLICY.set(breaker)  # this worker task's own context
            # Pulling from a shared iterator is the sliding window: no await between next().
            while not stop.is_set() and not executor.stopping:
                await gate.acquire()
                if executor.over_budget:  # the run's budget: no more items start
                    await gate.release(None)
                    return
                index = next(order, None)
                if index is None or stop.is_set() or executor.stopping:
                    await gate.release(None)
                    return
                outcome: bool | None = False
                try:
                    # The process's share first (a worker's items in flight), then, with
                    # workers, one of the loop's slots held across processes
                    # (engine/core/slots.py): both waited for before the item starts.
                    key = (
                        f"{frame.key}/{block.name}[{index}]"
                        if frame.key
                        else f"{block.name}[{index}]"
                    )
                    settled = executor.memo.settled(key)  # reused as it is: no slot needed
                    async with (
                        executor.item_gate or contextlib.nullcontext(),
                        item_slot(executor.services, block.id, frame.key, cap, needed=not settled),
                    ):
                        if stop.is_set() or executor.stopping or executor.over_budget:
                            outcome = None  # not begun: it starts on resume (or never)
                        else:
                            outcome = await run_item(index)
                finally:
                    limit = await gate.release(outcome)
                if outcome is None:
                    return
                if limit is not None:
                    bus.emit("loop.concurrency", loop=block.id, item=frame.key, limit=limit)
                await give_way()  # items that never suspend must not keep the loop

        async with asyncio.TaskGroup() as group:
            for _ in range(min(gate.cap, len(indexes))):
                group.create_task(worker())

    batch_size = int(block.config.get("batch_size") or 0)

    async def run_waves(indexes: list[int]) -> None:
        """The sliding window over all of `indexes`, or over one batch at a time."""
        if batch_size <= 0:
            await run_window(indexes)
            return
        waves = [indexes[i : i + batch_size] for i in range(0, len(indexes), batch_size)]
        for number, wave in enumerate(waves, 1):
            if stop.is_set() or executor.stopping or executor.over_budget:
                return
            bus.emit(
                "loop.batch",
                loop=block.id,
                item=frame.key,
                batch=number,
                batches=len(waves),
                size=len(wave),
            )
            await run_window(wave)

    pending = dispatch_order(items, block.config.get("priority"), executor.options.max_output_bytes)
    # An estimate (RunOptions.sample_items): a top-level loop runs its first items only.
    sample = executor.options.sample_items if not frame.key and span is None else None
    if sample and sample < len(pending):
        pending = pending[:sample]
    if span is not None:
        pending = list(span.indexes)
    elif executor.distributor is not None and distributable(executor, block, frame, total, cap):

        def report(chunk_counts: dict[str, int]) -> None:
            bus.emit(
                "progress", loop=block.id, item=frame.key, total=total, cap=cap, **chunk_counts
            )

        # Every item runs elsewhere; what they did comes back as a memo, and the window
        # below then only reuses it: outputs and aggregations as if run here.
        fanned = await executor.distributor.fan_out(block, items, pending, report)
        if compose_from_memo(executor, block, frame, items, fanned, need, results, failures):
            counts.update(succeeded=total - len(failures), failed=len(failures))
            begun.update(range(total))
            pending = []  # done, and retried within their chunks already
        else:  # inner loops (their outputs are rebuilt by running): reuse item by item
            executor.memo.absorb(fanned)
    progress()
    try:
        await run_waves(pending)
        # The brief's fail-safe strategy: failed items get another go once the batch is done.
        for _ in range(int(block.config.get("retry_failed") or 0) if pending else 0):
            if stop.is_set() or not failures or executor.stopping:
                break
            again = [f["index"] for f in failures]
            failures.clear()
            counts["failed"] -= len(again)
            executor.failed_items -= len(again)
            await run_waves(again)
    except asyncio.CancelledError:
        if not executor.stopping:  # a stop past the drain time is no cancel: it resumes
            record_not_started("not started: the run was cancelled before this item began")
        raise
    if executor.stopping:
        raise Interrupted
    if executor.over_budget and len(begun) < total:
        executor.budget_not_started += total - len(begun)
        record_not_started(executor.budget_reason())
        begun.update(range(total))  # recorded: nothing else may record them again
    if sample and len(begun) < total:
        record_not_started(f"not started: an estimate runs the first {sample} items only")
        begun.update(range(total))
    if span is not None:
        return {}
    if fail_fast and failures:
        first_failed = min(f["index"] for f in failures)
        record_not_started(
            f"not started: fail_fast stopped the loop after item {first_failed} failed"
        )

    failures.sort(key=lambda f: f["index"])
    succeeded = [r for r in results if r is not _PENDING]
    if fail_fast and failures:
        first = failures[0]
        raise StepFailed(block, f"stopped after item {first['index']} failed: {first['error']}")
    # Every item failed (a run's budget may have left some not started: not a failure).
    if total and not succeeded and len(failures) == total:
        raise StepFailed(block, f"all {total} items failed; first: {failures[0]['error']}")
    output: dict[str, Any] = {
        "results": succeeded,
        "count": total,
        "succeeded": len(succeeded),
        "failed": failures,
    }
    for name, expression in (block.config.get("aggregations") or {}).items():
        try:
            output[name] = await search_async(
                expression,
                output,
                max_bytes=executor.options.max_output_bytes,
                what="its result",
                sizes=outer_sizes,
            )
        except BlockError as exc:
            raise StepFailed(block, f"aggregation '{name}' failed: {exc}") from None
    return output
