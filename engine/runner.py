"""Executes a stored Run: loads its frozen version, runs the engine, stores the events.

`execute_run` is the one entry point (the in-process executor, the CLI and the tests call
it). `InProcessExecutor` is the embedded default: one background event-loop thread per web
process that runs submitted runs concurrently.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from engine import leases, secrets_registry
from engine.blocks import REGISTRY
from engine.config import (
    build_services,
    data_source,
    loop_item_limits,
    price_table,
    provider_registry,
    retry_policy,
)
from engine.core.bounded import stored_output
from engine.core.data_pools import DataLease, DataPools, DataSource
from engine.core.distribution import RankedGate
from engine.core.events import Event, EventBus
from engine.core.executor import Executor, Interrupted, RunOptions
from engine.core.graph import Graph, parse_graph
from engine.core.limits import MAX_RUN_PRIORITY, MAX_RUN_WEIGHT, MIN_RUN_WEIGHT
from engine.core.memo import Memo
from engine.core.redaction import Redactor
from engine.core.services import Services
from engine.db_calls import DbThread, db_call
from engine.gc_freeze import GcFreezer
from engine.memo_rows import memo_for_resume, memo_for_retry
from engine.models import FINAL_STATUSES, Run, RunStatus
from engine.result_cache import DbResultCache
from engine.store import RunStore, publish_run_ended

log = logging.getLogger(__name__)

# The executor's thread holds the GIL for up to the switch interval at a time (5 ms by
# default) while a big run keeps it busy; the web server's thread needs the GIL back after
# every socket or database wait, so shorter turns answer requests sooner (bench e).
GIL_SWITCH_SECONDS = 0.001


@dataclass
class RunSpec:
    graph: Graph
    input: Any
    env: dict[str, str]
    options: dict[str, Any]
    data: DataSource
    workflow_id: Any = None
    # Where the run's events go on from (a resumed run continues its own numbering).
    last_seq: int = 0
    memo: Memo | None = None
    owner_id: Any = None

    @property
    def resumed(self) -> bool:
        return self.last_seq > 0


# `final` of an execution that stops without ending the run (it is resumed later).
SUSPEND: dict[str, Any] = {}


def _claim_and_load(run_id: Any, owner: str) -> RunSpec | None:
    """The run claimed and loaded on one connection (None: not ours to execute)."""
    if not leases.claim(run_id, owner):
        return None
    return _load(run_id)


@dataclass(frozen=True)
class Claim:
    """A run claimed (and loaded) before `execute_run`: `created_claimed`."""

    owner: str
    spec: RunSpec | None  # None: not ours to execute
    error: Exception | None = None  # what the claim or the load raised


def created_claimed(run: Run) -> Claim:
    """The claim of a run created claimed by this thread (`run_create(lease_owner=...)`: the
    CLI's), loaded on its connection: no claim of its own, no connection opened for it."""
    try:
        # Loaded as stored, as any run is (jsonb gives its input's keys in its own order).
        return Claim(run.lease_owner, _load(run.pk))
    except Exception as exc:  # execute_run fails the run with it, as with its own claim
        return Claim(run.lease_owner, None, exc)


_claimers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DbThread] = (
    weakref.WeakKeyDictionary()
)


async def _claim(run_id: Any, owner: str) -> RunSpec | None:
    """`_claim_and_load` on the executor's loop through a thread that keeps its connection
    (a new one per run was 10-20 ms of every run's start); elsewhere (a test's loop) on a
    pool thread that leaves none open."""
    loop = asyncio.get_running_loop()
    if loop is not executor._loop:
        return await db_call(_claim_and_load, run_id, owner)
    claimer = _claimers.get(loop)
    if claimer is None:
        claimer = _claimers[loop] = DbThread("klyntos-claims")
    return await claimer.call(_claim_and_load, run_id, owner)


def _load(run_id: Any) -> RunSpec:
    """The claimed run: its frozen graph, input and owner's secrets, and — when it ran
    before (resumed) or repeats another run's failures (a retry) — what is done already."""
    run = Run.objects.select_related("version").get(pk=run_id)
    graph = parse_graph(run.version.graph)
    memo = None
    if run.last_seq > 0:  # events were stored: an execution before this one was interrupted
        memo = memo_for_resume(run.pk, graph)
        Run.objects.filter(pk=run.pk).update(resumes=run.resumes + 1)
        log.warning("resuming run %s: %d stored results reused", run.pk, memo.size)
    elif run.retry_of_id is not None:
        memo = memo_for_retry(run.retry_of_id, graph)
    return RunSpec(
        graph,
        run.input,
        secrets_registry.owner_env(run.owner_id),
        run.options or {},
        # The owner's data is provisioned (on first use) while the run starts: only the
        # run's first statement waits for it, not its first steps (engine/core/data_pools.py).
        data_source(run.owner_id, provision_now=False),
        run.workflow_id,
        run.last_seq,
        memo,
        run.owner_id,
    )


def _finish(run_id: Any, values: dict[str, Any]) -> Any:
    """End a run the engine never ran; returns its workflow's id."""
    Run.objects.filter(pk=run_id).exclude(status__in=FINAL_STATUSES).update(running=0, **values)
    return Run.objects.filter(pk=run_id).values_list("workflow_id", flat=True).first()


async def execute_run(
    run_id: Any,
    *,
    on_event: Callable[[Event], None] | None = None,
    claim: Claim | None = None,
) -> None:
    """`_execute_run` with the loop's garbage-collector settings for runs (gc_freeze.py),
    whoever calls it: the executor, the CLI, a benchmark."""
    await GcFreezer.of_loop().around(_execute_run(run_id, on_event=on_event, claim=claim))


async def _execute_run(
    run_id: Any,
    *,
    on_event: Callable[[Event], None] | None = None,
    claim: Claim | None = None,
) -> None:
    """Claim the run (nothing to do when another execution holds it; `claim`: claimed
    already), run it — resumed from its stored rows when it ran before — and store its end;
    a graceful stop stores what is done and gives the run back instead."""
    owner = claim.owner if claim is not None else leases.new_owner()
    store: RunStore | None = None
    services: Services | None = None
    engine: Executor | None = None
    warming: asyncio.Future[None] | None = None
    final: dict[str, Any] = {}
    claimed = False
    # What a crash's message is masked with: the run's own secrets once they are read (never
    # every owner's: `run.error` is the owner's to read, and other owners' values would
    # confirm a guess at them).
    redactor = Redactor(())
    try:
        # A cancel while claiming still ends the run (the claim may have happened).
        claimed = True
        if claim is None:
            loaded = await _claim(run_id, owner)
        elif claim.error is not None:
            raise claim.error
        else:
            loaded = claim.spec
        if loaded is None:
            claimed = False
            log.info("run %s is executed elsewhere or has ended", run_id)
            return
        spec = loaded
        redactor = Redactor(spec.env.values())
        secrets_registry.register(spec.env.values())
        task = asyncio.current_task()
        store = RunStore(
            run_id,
            on_cancelled=task.cancel if task is not None else None,
            workflow_id=spec.workflow_id,
            lease_owner=owner,
            start_seq=spec.last_seq,
            loop_of={b.id: b.parent for b in spec.graph.blocks if b.parent is not None},
        )
        sink = store.sink if on_event is None else _tee(store.sink, on_event)
        services = await run_services(spec, run_id)
        services.durability = store
        distributor = None
        if executor.distributes:  # on a worker, big loops go out to the workers in chunks
            from engine.distribute import WorkerDistributor

            distributor = WorkerDistributor(run_id, spec.graph, store)
        engine = Executor(
            spec.graph,
            REGISTRY,
            bus=EventBus(sink, redactor, start_seq=spec.last_seq),
            services=services,
            env=spec.env,
            options=run_options(spec, run_id),
            memo=spec.memo,
            distributor=distributor,
        )
        if distributor is not None:
            distributor.engine = engine
        spec.memo = None  # the executor takes its entries out as it uses them
        warming = _warm_data(services, engine)
        executor.started(engine)
        store.start()
        outcome = await engine.run(spec.input, resumed=spec.resumed)
        loops = {block.name for block in engine.graph.blocks if block.is_loop}
        bounded = {
            name: stored_output(output, is_loop=name in loops)
            for name, output in outcome.outputs.items()
        }
        final = {"outputs": redactor.value(bounded)}
    except Interrupted:
        final = SUSPEND
    except asyncio.CancelledError:
        # Past the drain time the process cancels what is left: that is a stop, not a cancel.
        if executor.stopping:
            final = SUSPEND
        else:
            final = {"status": RunStatus.CANCELLED, "finished_at": timezone.now()}
        raise
    except Exception as exc:  # infrastructure failure: the run fails with the reason
        log.exception("run %s crashed", run_id)
        message = redactor.text(f"{type(exc).__name__}: {exc}")
        final = {"status": RunStatus.FAILED, "error": message, "finished_at": timezone.now()}
    finally:
        if warming is not None:
            warming.cancel()
        if engine is not None:
            executor.ended(engine)
        if claimed:  # else nothing of this run is ours to store
            closing = asyncio.ensure_future(_close(store, services, run_id, final))
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                await closing  # cancelled again while closing: the end must still be recorded
                raise


def run_options(spec: RunSpec, run_id: Any = None) -> RunOptions:
    in_flight, per_run = loop_item_limits()
    return RunOptions(
        sequential=bool(spec.options.get("sequential")),
        max_concurrent=spec.options.get("max_concurrent"),
        block_timeout=settings.KLYNTOS_BLOCK_TIMEOUT,
        max_output_bytes=settings.KLYNTOS_MAX_OUTPUT_BYTES,
        retry=retry_policy(),
        budget_usd=_budget(spec.options.get("budget_usd")),
        prices=price_table(),
        sample_items=int(spec.options.get("sample_items") or 0) or None,
        weight=_weight(spec.options.get("weight")),
        priority=_priority(spec.options.get("priority")),
        run_key=str(run_id) if run_id is not None else "",
        owner_key=str(spec.owner_id) if spec.owner_id is not None else "",
        # A run row's input was checked against its version's (immutable) trigger schema
        # when the row was created (builder.services.run_create answers 422 otherwise; a
        # retry reuses that input).
        input_checked=True,
        max_items_in_flight=in_flight,
        max_items_per_run=per_run,
    )


def _weight(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(MAX_RUN_WEIGHT, max(MIN_RUN_WEIGHT, float(value)))
    return 1.0


def _priority(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return min(MAX_RUN_PRIORITY, max(-MAX_RUN_PRIORITY, value))
    return 0


def _budget(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def run_services(spec: RunSpec, run_id: Any) -> Services:
    """The run's services on the owner's leased data connection; with workers its loops'
    caps hold across processes (the run's slot keys, engine/core/slots.py)."""
    data = await data_pools().lease(spec.data)
    try:
        # Every call this run makes says one more run led to it (webhook-to-self recursion).
        depth = int(spec.options.get("call_depth") or 0) + 1
        services = build_services(data, call_depth=depth, run_id=run_id)
        if spec.owner_id is not None:  # the owner's result cache (blocks with `cache`)
            services.result_cache = DbResultCache(spec.owner_id)
        return services
    except BaseException:
        await data.aclose()
        raise


def _warm_data(services: Services, engine: Executor) -> asyncio.Future[None] | None:
    """Open the data connections the run's database steps can use at once while its first
    steps run (their pool would otherwise open them one by one as the first statements
    wait: a loop's first items queued behind each other's)."""
    peak = engine.peak_concurrency("database")
    if not isinstance(services.data, DataLease) or peak < 2:
        return None
    return asyncio.ensure_future(_warm(services.data, peak))


async def _warm(data: DataLease, connections: int) -> None:
    try:
        await data.warm(connections)
    except Exception:  # the first statement reports what is wrong with the data connection
        log.debug("could not open the run's data connections ahead", exc_info=True)


def _tee(*sinks: Callable[[Event], None]) -> Callable[[Event], None]:
    def sink(event: Event) -> None:
        for target in sinks:
            target(event)

    return sink


async def _close(
    store: RunStore | None, services: Services | None, run_id: Any, final: dict[str, Any]
) -> None:
    workflow_id = store.workflow_id if store is not None else None
    # The run's clients and data lease close once its end is stored, not before or meanwhile:
    # the end is what everyone waits for, and closing forty connections and a pool on the same
    # loop while it was stored held the end back (~10 ms of the template's 100-lead tail).
    # They close while the end is announced (the channel layer may be slow to answer).
    # A closed session or pool changes nothing stored.
    closing: asyncio.Future[None] | None = None
    try:
        if final is SUSPEND:
            if store is not None:
                await store.suspend()
        else:
            if store is not None:
                await store.close(final)  # the end and the outputs, in one transaction
                log.info("%s", store.ended_line(final))
            elif final:  # failed before the engine started (e.g. the run could not be loaded)
                workflow_id = await db_call(_finish, run_id, final)
            closing = _start_closing(services)
            await publish_run_ended(run_id, workflow_id)
    finally:
        if closing is None:  # a suspend, or the end failed: they close now
            closing = _start_closing(services)
        if closing is not None:
            await closing


def _start_closing(services: Services | None) -> asyncio.Future[None] | None:
    return asyncio.ensure_future(services.aclose()) if services is not None else None


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DataPools] = (
    weakref.WeakKeyDictionary()
)


def data_pools() -> DataPools:
    """This event loop's per-owner data connections. The executor's loop outlives its runs
    and keeps idle ones for the next run (at most KLYNTOS_DATA_POOLS, least recently used
    closed first); any other loop (the CLI's, a test's) ends with its runs, so nothing stays
    open there."""
    loop = asyncio.get_running_loop()
    pools = _pools.get(loop)
    if pools is None:
        keep_idle = loop is executor._loop
        pools = _pools[loop] = DataPools(settings.KLYNTOS_DATA_POOLS, keep_idle=keep_idle)
    return pools


class InProcessExecutor:
    """Runs submitted runs on one background event loop owned by this process.

    Never the web server's loop: a 100,000-item run keeps its loop busy, and requests must
    not queue behind it. Publishing to the in-memory channel layer, which needs the web
    loop, hops there (engine/publish.py).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._futures: dict[str, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()
        # The engines running on the loop (to interrupt them on a graceful stop).
        self._engines: set[Executor] = set()
        self._finished: dict[str, threading.Event] = {}
        self.stopping = False
        self.chunk_items: RankedGate | None = None
        # A worker's executor (`manage.py worker`) spreads big loops over the workers.
        self.distributes = False

    def serve_as_worker(self, concurrency: int) -> None:
        """This process is a worker: its runs spread big loops over the workers in chunks,
        and at most `concurrency` items of chunks are in flight here at once (a worker's
        `--concurrency`: what one worker takes on, whatever the loops' caps)."""
        self.distributes = True
        self.chunk_items = RankedGate(concurrency)  # the oldest chunk's items first
        from engine.slots import cluster_wide

        if cluster_wide():  # every worker pauses and resumes a provider together
            from engine.breaker_sharing import share_breakers

            asyncio.run_coroutine_threadsafe(share_breakers(), self.loop).result(30)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The executor's loop (started on first use)."""
        return self._ensure_loop()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                if sys.getswitchinterval() > GIL_SWITCH_SECONDS:
                    sys.setswitchinterval(GIL_SWITCH_SECONDS)
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="klyntos-executor", daemon=True
                )
                thread.start()
                self._loop = loop
            return self._loop

    def started(self, engine: Executor) -> None:
        self._engines.add(engine)
        if self.stopping:
            engine.interrupt()

    def ended(self, engine: Executor) -> None:
        self._engines.discard(engine)

    def running_ids(self) -> set[str]:
        return set(self._futures)

    def stop(self, drain: float) -> int:
        """The graceful stop: start no more items, let the items in flight finish for up to
        `drain` seconds, then cancel what is left. Every run stores what it did and gives
        its lease back (engine/leases.py), to be resumed by the next start or another
        process. Returns how many runs were still going when the drain time ran out."""
        self.stopping = True
        loop = self._loop
        if loop is None or not self._futures:
            return 0

        def interrupt_all() -> None:
            for engine in list(self._engines):
                engine.interrupt()

        loop.call_soon_threadsafe(interrupt_all)
        left = self.drain(drain)
        if left:
            for future in list(self._futures.values()):
                future.cancel()
        self.wait_returned(10)
        return left

    def wait_returned(self, timeout: float) -> None:
        """Waits up to `timeout` s for the coroutines of the runs submitted here to return. A
        cancelled future is done at once, but its run's coroutine still stores its rows and
        gives its lease back."""
        deadline = time.monotonic() + timeout
        for finished in list(self._finished.values()):
            finished.wait(max(0.0, deadline - time.monotonic()))
        self._finished = {k: v for k, v in self._finished.items() if not v.is_set()}

    def submit(self, run_id: Any) -> concurrent.futures.Future[None]:
        return self._submit(str(run_id), lambda: execute_run(run_id))

    def submit_chunk(self, chunk_id: int) -> concurrent.futures.Future[None]:
        """A chunk of a distributed loop's items (engine/distribute.py)."""
        from engine.distribute import execute_chunk

        return self._submit(f"chunk:{chunk_id}", lambda: execute_chunk(chunk_id))

    def _submit(
        self, key: str, execute: Callable[[], Coroutine[Any, Any, None]]
    ) -> concurrent.futures.Future[None]:
        finished = threading.Event()  # set when the coroutine has really returned

        async def execution() -> None:
            try:
                # Short full GC passes while runs hold millions of objects (a run's own
                # `execute_run` nests in the same freezer; a chunk's execution needs this one).
                await GcFreezer.of_loop().around(execute())
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(execution(), self._ensure_loop())
        self._futures[key] = future
        self._finished[key] = finished

        def forget(_: Any) -> None:
            self._futures.pop(key, None)
            if finished.is_set():
                self._finished.pop(key, None)

        future.add_done_callback(forget)
        return future

    def close_data_pools(self, timeout: float = 30) -> None:
        """Close the idle data connections the executor's loop keeps, and its claims'
        connection (from another thread: before dropping a database, at shutdown)."""
        loop = self._loop
        self.close_kept_runs(timeout)  # they hold leases of the pools
        pools = _pools.get(loop) if loop is not None else None
        if loop is not None and pools is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(pools.aclose(), loop).result(timeout)
        claimer = _claimers.pop(loop, None) if loop is not None else None
        if claimer is not None and loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(claimer.aclose(), loop).result(timeout)
        elif claimer is not None:  # the loop is gone: its connection must not stay open
            claimer.close(timeout)

    def close_kept_runs(self, timeout: float = 30) -> None:
        """Close what the executor's loop keeps of runs between their chunks (services,
        store connections: engine/chunk_runs.py), from another thread."""
        from engine.chunk_runs import KeptRuns

        loop = self._loop
        kept = KeptRuns.on(loop)
        if loop is not None and kept is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(kept.aclose(), loop).result(timeout)

    def close_slots(self, timeout: float = 30) -> None:
        """Give back the cluster slots the executor's loop keeps for its next holders (at a
        worker's stop: they would otherwise stay held until their lease runs out)."""
        from engine.breaker_sharing import stop_sharing
        from engine.slots import close_loop_slots

        stop_sharing(self._loop)
        self.close_kept_runs(timeout)  # their chunks ended: nothing holds a slot of theirs
        close_loop_slots(self._loop, timeout)

    def drain(self, timeout: float) -> int:
        """Waits up to `timeout` s for the runs in flight to end; returns how many still run."""
        _, not_done = concurrent.futures.wait(list(self._futures.values()), timeout)
        return len(not_done)

    def resume_provider(self, key: str, timeout: float = 5.0) -> bool:
        """Close `key`'s breaker in the registry of the executor's loop (shared by every run
        on it): a manual breaker's Resume; with workers, the workers' breakers too, which
        each applies within KLYNTOS_BREAKER_SYNC_SECONDS (engine/breaker_sharing.py). False
        when it was open nowhere."""
        from engine.slots import cluster_wide

        resumed = False
        loop = self._loop
        if loop is not None and loop.is_running():

            async def resume() -> bool:
                return provider_registry().resume(key)

            resumed = asyncio.run_coroutine_threadsafe(resume(), loop).result(timeout)
        if cluster_wide():
            from engine.breaker_sharing import resume_everywhere

            resumed = resume_everywhere(key) or resumed
        return resumed

    def cancel(self, run_id: Any) -> bool:
        future = self._futures.get(str(run_id))
        return bool(future and future.cancel())

    def wait(self, run_id: Any, timeout: float | None = None) -> None:
        future = self._futures.get(str(run_id))
        if future is not None:
            try:
                future.result(timeout)
            except concurrent.futures.CancelledError:
                pass


executor = InProcessExecutor()
