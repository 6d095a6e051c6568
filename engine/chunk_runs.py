"""What a worker keeps of a run between that run's chunks (engine/distribute.py).

A chunk's fixed cost is paid per chunk, a 100-item chunk every few tenths of a second at
zero latency: claiming and loading it, building the run's services (an HTTP session, whose
connections a new session opens again, one per item in flight), a store connection, and
closing all of it. So one worker keeps, per run whose chunks it executes, on the event loop
that executes them (`KeptRuns.of_loop`):

- the run's `RunSpec` as loaded once (frozen graph parsed, input, options, the owner's
  environment and data source: a run's are fixed when it is claimed, as inline), so a
  chunk's claim and load is one call on one kept connection (`KeptRuns.claim`: the claim,
  the chunk's own memo, and the run only when not kept);
- the stored steps before the loop (`KeptRun.top`), which every chunk's first execution
  starts from and which hold the loop's whole input: read and decoded by the run's first
  chunk here, copied for the next (at 10,000 items, 100 chunks each decoded all 10,000);
- the run's `Services` (HTTP session and its warm connections, the owner's leased data
  connection, the slot holder), shared by the run's chunks in flight here as a run's items
  share them inline;
- the store threads of its chunks' stores, each with the database connection it keeps, and
  the connections their batches go on from the event loop (engine/loop_connection.py).

What a run's last chunk here leaves is closed `LINGER_SECONDS` after it ended, unless
another chunk of the run came meanwhile, and everything at a worker's stop (`aclose`,
through `InProcessExecutor.close_slots` / `close_data_pools`). Nothing here decides what a
chunk does: claims, leases and rows are the same statements as before, and a chunk that
runs again (`ChunkClaim.again`: an execution before it counted, or a stop gave it back
after storing some of its items) or belongs to a retry reads its memo whole, so a chunk is as
durable and resumable as ever.
"""

from __future__ import annotations

import asyncio
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections, router

from engine import chunks
from engine.core.graph import Block, parse_graph
from engine.core.memo import Memo, StoredStep
from engine.db_calls import DbThread
from engine.loop_connection import LoopConnection
from engine.memo_rows import memo_for_chunk
from engine.models import Run

if TYPE_CHECKING:
    from engine.core.services import Services
    from engine.runner import RunSpec

# How long a run's services, store connections and loaded spec outlive its last chunk here
# (the next chunk of a busy run comes within a job fetch, a few milliseconds).
LINGER_SECONDS = 2.0


@dataclass
class _Loaded:
    """A claimed chunk as the claim's database call returns it."""

    claim: chunks.ChunkClaim
    memo: Memo
    spec: RunSpec | None  # None when the run was kept already
    retry_of: Any
    top: dict[Any, StoredStep] | None = None  # the steps before the loop, when read now


class KeptRun:
    """One run's kept parts on this worker (module docstring)."""

    def __init__(self, run_id: Any, spec: RunSpec, retry_of: Any) -> None:
        self.run_id = run_id
        self.spec = spec
        self.retry_of = retry_of
        self.services: Services | None = None
        self.users = 0
        self.loads = 1  # how many times its run was loaded from the database (tests)
        # The stored steps before the loop, as a first execution of a chunk reads them:
        # the same for every chunk of the run (done before the loop went out in chunks), so
        # read and decoded once here — they hold the loop's whole input — not per chunk.
        self.top: dict[Any, StoredStep] | None = None
        self._building = asyncio.Lock()
        self._threads: list[ThreadPoolExecutor] = []
        self._on_loop: list[LoopConnection] = []
        self._closer: asyncio.TimerHandle | None = None
        self.closed = False

    async def ensure_services(self) -> Services:
        from engine.runner import run_services

        async with self._building:
            if self.services is None:
                self.services = await run_services(self.spec, self.run_id)
            return self.services

    def store_thread(self) -> ThreadPoolExecutor:
        """A store thread for one of the run's chunks: one left by an earlier chunk (its
        connection open), or a new one."""
        if self._threads:
            return self._threads.pop()
        return ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"chunk-store-{str(self.run_id)[:8]}"
        )

    def give_back_thread(self, thread: ThreadPoolExecutor) -> None:
        if self.closed:
            _close_thread_soon(thread)
        else:
            self._threads.append(thread)

    def loop_connection(self) -> LoopConnection:
        """The connection a chunk's store sends its batches on from the event loop: one an
        earlier chunk left open, or a new one (it connects on first use)."""
        if self._on_loop:
            return self._on_loop.pop()
        return LoopConnection(router.db_for_write(Run))

    async def give_back_loop_connection(self, on_loop: LoopConnection) -> None:
        if self.closed:
            await on_loop.close()
        else:
            self._on_loop.append(on_loop)

    async def aclose(self) -> None:
        self.closed = True
        if self._closer is not None:
            self._closer.cancel()
        threads, self._threads = self._threads, []
        kept_on_loop, self._on_loop = self._on_loop, []
        try:
            for on_loop in kept_on_loop:
                await on_loop.close()
            if self.services is not None:
                await self.services.aclose()
        finally:
            loop = asyncio.get_running_loop()
            for thread in threads:
                try:
                    await loop.run_in_executor(thread, connections.close_all)
                finally:
                    thread.shutdown(wait=False)


def _close_thread_soon(thread: ThreadPoolExecutor) -> None:
    thread.submit(connections.close_all)
    thread.shutdown(wait=False)


class KeptRuns:
    """This event loop's kept runs (module docstring). All on the loop, except the claim's
    database call, which only reads which runs are kept."""

    _of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, KeptRuns] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self._runs: dict[Any, KeptRun] = {}
        self._db: DbThread | None = None
        self._claiming = 0

    @classmethod
    def of_loop(cls) -> KeptRuns:
        loop = asyncio.get_running_loop()
        kept = cls._of.get(loop)
        if kept is None:
            kept = cls._of[loop] = cls()
        return kept

    @classmethod
    def on(cls, loop: asyncio.AbstractEventLoop | None) -> KeptRuns | None:
        """`loop`'s kept runs, if it keeps any (from another thread: nothing is made)."""
        return cls._of.get(loop) if loop is not None else None

    def kept(self, run_id: Any) -> KeptRun | None:
        return self._runs.get(run_id)

    async def claim(
        self, chunk_id: int, owner: str
    ) -> tuple[chunks.ChunkClaim, KeptRun, Memo] | None:
        """Claim the chunk and load what it starts from, on the kept connection; the run's
        kept parts (loaded now when not kept), held until `release`. None: not ours."""
        if self._db is None:
            self._db = DbThread("chunk-claims")
        db = self._db
        self._claiming += 1  # the claims' connection stays open meanwhile
        try:
            loaded = await db.call(_claim_and_load, chunk_id, owner, self._runs.get)
            if loaded is None:
                return None
            run_id = loaded.claim.run_id
            kept = self._runs.get(run_id)
            if kept is None or kept.closed:
                spec = loaded.spec
                if spec is None:  # it was kept when the call looked, and closed since
                    spec = (await db.call(_load_run, run_id))[0]
                kept = self._runs[run_id] = KeptRun(run_id, spec, loaded.retry_of)
            elif loaded.spec is not None:
                kept.loads += 1  # two first chunks at once both loaded it: one is kept
            if kept.top is None and loaded.top is not None:
                kept.top = loaded.top
        finally:
            self._claiming -= 1
        kept.users += 1
        if kept._closer is not None:
            kept._closer.cancel()
            kept._closer = None
        return loaded.claim, kept, loaded.memo

    def release(self, kept: KeptRun) -> None:
        """A chunk of the run ended here: when it was the last one in flight, the run's
        parts are closed `LINGER_SECONDS` later, unless another chunk of it comes first."""
        kept.users -= 1
        if kept.users > 0 or kept.closed:
            return
        loop = asyncio.get_running_loop()
        kept._closer = loop.call_later(LINGER_SECONDS, self._close_idle, kept)

    def _close_idle(self, kept: KeptRun) -> None:
        if kept.users > 0 or kept.closed:
            return
        asyncio.ensure_future(self._close(kept))

    async def _close(self, kept: KeptRun) -> None:
        if self._runs.get(kept.run_id) is kept:
            del self._runs[kept.run_id]
        await kept.aclose()
        if not self._runs and not self._claiming and self._db is not None:
            db, self._db = self._db, None
            await db.aclose()

    async def aclose(self) -> None:
        """Close every kept run (in use or not) and the claims' connection."""
        runs, self._runs = list(self._runs.values()), {}
        for kept in runs:
            await kept.aclose()
        if self._db is not None:
            db, self._db = self._db, None
            await db.aclose()


def _load_run(run_id: Any) -> tuple[RunSpec, Any]:
    """A run's spec (graph, input, owner's environment and data) and what it retries."""
    from engine import secrets_registry
    from engine.config import data_source
    from engine.runner import RunSpec

    run = Run.objects.select_related("version").get(pk=run_id)
    spec = RunSpec(
        parse_graph(run.version.graph),
        run.input,
        secrets_registry.owner_env(run.owner_id),
        run.options or {},
        data_source(run.owner_id),
        run.workflow_id,
        owner_id=run.owner_id,  # the owner's result cache
    )
    return spec, run.retry_of_id


def _claim_and_load(chunk_id: int, owner: str, kept: Any) -> _Loaded | None:
    """On the claims' thread: the claim, then the run when `kept(run_id)` has none, then the
    chunk's memo (its own: the executor takes from it; a first execution's is a copy of the
    run's kept steps before the loop, read by its first chunk here)."""
    claim = chunks.claim(chunk_id, owner)
    if claim is None:
        return None
    run = kept(claim.run_id)
    spec: RunSpec | None
    if run is None or run.closed:
        spec, retry_of = _load_run(claim.run_id)
        graph = spec.graph
    else:
        spec, retry_of, graph = None, run.retry_of, run.spec.graph
    again = claim.again
    if not again and retry_of is None:  # a first execution starts from the steps before
        if run is not None and run.top is not None:  # the loop only: kept (KeptRun.top)
            # A copy: the executor takes its entries out as it uses them.
            return _Loaded(claim, Memo(dict(run.top)), spec, retry_of, top=run.top)
        memo = memo_for_chunk(claim.run_id, graph, [], again=False)
        return _Loaded(claim, memo, spec, retry_of, top=dict(memo.steps))
    loop: Block = graph.block(claim.loop_block)
    keys = [f"{loop.name}[{index}]" for index in claim.indexes]
    memo = memo_for_chunk(claim.run_id, graph, keys, again=again, retry_of=retry_of)
    return _Loaded(claim, memo, spec, retry_of)
