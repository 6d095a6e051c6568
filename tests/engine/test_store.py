"""Events become rows in batches, and coalesced deltas reach the channel-layer group."""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.utils import timezone

from builder.services import run_create, workflow_create
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run
from engine.store import group_name
from tests.engine.graphs import burst_graph, lookup_burst_graph

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def new_run(owner: Any, items: list[dict[str, Any]]) -> Run:
    workflow = workflow_create(owner=owner, name="burst", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": items})
    return run


def items_begun(store: Any, items: int, *, step: str | None = None) -> Any:
    """The store's event bus after `run.started` and the start of `items` items (data
    `{"v": index + 1}`), each with its `step` started too when one is named."""
    from engine.core.events import EventBus
    from engine.core.redaction import Redactor

    bus = EventBus(store.sink, Redactor())
    bus.emit("run.started")
    for index in range(items):
        key = f"loop[{index}]"
        bus.emit("item.started", item=key, loop="loop", index=index, data={"v": index + 1})
        if step is not None:
            bus.emit("step.started", block=step, name=step, item=key)
    return bus


async def test_a_burst_of_items_is_stored_and_published_coalesced(owner: Any) -> None:
    items = [{"v": i} if i != 7 else {} for i in range(1000)]
    run = await sync_to_async(new_run)(owner, items)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group_name(run.pk), channel)

    started = time.monotonic()
    await execute_run(run.pk)
    elapsed = time.monotonic() - started
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout=0.5))
        except TimeoutError:
            break

    run = await Run.objects.aget(pk=run.pk)
    assert run.status == "partially_succeeded"
    assert (run.total, run.succeeded, run.failed, run.running) == (1000, 999, 1, 0)
    assert await ItemRun.objects.filter(run=run).acount() == 1000
    failed = await ItemRun.objects.aget(run=run, status="failed")
    assert failed.index == 7 and "<item.v>" in failed.error and failed.failed_block == "square"
    step = await StepRun.objects.aget(run=run, item_key="loop[3]", block_id="square")
    assert step.output == {"result": 3} and step.status == "succeeded" and step.attempts == 1

    assert messages[-1] == {"type": "run.ended"}  # sent once the final row update is stored
    deltas = [m["delta"] for m in messages if m["type"] == "run.delta"]
    assert len(deltas) == len(messages) - 1
    # At most one per interval (0.1 s), the first at once, and the close's two (the last
    # rows, then the end): a run that ends fast made "+ 2" one short of the mechanism.
    assert 1 <= len(deltas) <= elapsed * 10 + 3, (len(deltas), elapsed)
    seqs = [d["seq"] for d in deltas]
    assert seqs == sorted(seqs) and seqs[-1] == run.last_seq
    final = deltas[-1]["run"]
    assert final["status"] == "partially_succeeded" and final["succeeded"] == 999
    await layer.group_discard(group_name(run.pk), channel)
    await sync_to_async(connections.close_all)()  # the async ORM's thread keeps one open


def test_cancelling_marks_the_run_cancelled(owner: Any) -> None:
    run = new_run(owner, [{"v": i} for i in range(5)])

    async def cancel_soon() -> None:
        task = asyncio.create_task(execute_run(run.pk))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    run.refresh_from_db()
    assert run.status == "cancelled" and run.finished_at is not None


def test_waves_are_visible_in_the_stored_rows_and_the_loop_state(
    owner: Any, simulator: Any
) -> None:
    """`batch_size` 10 on 50 items: from the stored rows, no item of batch k+1 started
    before every item of batch k ended; the loop's state says which batch (folded events)."""
    simulator.control.configure(
        latency_ms=5,
        jitter_ms=[0, 30],
        failures=[{"endpoint": "clearbit", "match": {"domain": "d12.example"}, "status": 404}],
    )
    graph = lookup_burst_graph(max_concurrent=4, batch_size=10)
    workflow = workflow_create(owner=owner, name="waves", graph=graph)
    items = [{"domain": f"d{i}.example"} for i in range(50)]
    run, _ = run_create(workflow=workflow, input={"items": items})
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    assert (run.status, run.succeeded, run.failed) == ("partially_succeeded", 49, 1)
    rows = list(ItemRun.objects.filter(run=run).values("index", "started_at", "finished_at"))
    assert len(rows) == 50
    for k in range(4):
        ended = max(r["finished_at"] for r in rows if r["index"] // 10 == k)
        started = min(r["started_at"] for r in rows if r["index"] // 10 == k + 1)
        assert started >= ended, (k, started, ended)
    assert run.loops["loop"]["batch"] == 5 and run.loops["loop"]["batches"] == 5


@pytest.mark.django_db(transaction=True)
def test_the_store_thread_keeps_its_connection_and_replaces_a_broken_one() -> None:
    """Every batch used to open a new connection (CONN_MAX_AGE 0); a kept one that the
    database dropped must still be replaced, or the next batch would be lost."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import OperationalError, connection

    from engine.polling import drop_broken_connections

    def backend() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])

    def kept_twice() -> tuple[int, int]:
        first = backend()
        drop_broken_connections()
        return first, backend()

    def after_the_drop() -> int:
        with pytest.raises(OperationalError):
            backend()
        drop_broken_connections()
        try:
            return backend()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as thread:  # the store's: one thread, its connection
        first, kept = thread.submit(kept_twice).result()
        with connection.cursor() as cursor:  # this thread's own connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [kept])
        replaced = thread.submit(after_the_drop).result()
    assert kept == first and replaced != kept


async def test_durable_writes_at_once_and_returns_once_the_rows_are_stored(owner: Any) -> None:
    """What a loop item waits for before it gives its slot back (engine/core/loop.py)."""
    from engine.store import RunStore

    run = await sync_to_async(new_run)(owner, [{"v": 1}, {"v": 2}])
    store = RunStore(run.pk, interval=60, publish=False)  # no timed write during the test
    store.start()
    bus = items_begun(store, 2)
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=0.01)
    await asyncio.wait_for(store.durable(), 10)
    statuses = {row.key: row.status async for row in ItemRun.objects.filter(run=run)}
    assert statuses == {"loop[0]": "succeeded", "loop[1]": "running"}
    await asyncio.wait_for(store.durable(), 10)  # nothing new: returns at once
    # A row that only started, left out of the batch that carried its event: every event
    # is stored, yet durable() waits for the row too.
    bus.emit("item.started", item="loop[2]", loop="loop", index=2, data={"v": 3})
    await store._flush()
    assert not await ItemRun.objects.filter(run=run, key="loop[2]").aexists()
    await asyncio.wait_for(store.durable(), 10)
    assert (await ItemRun.objects.aget(run=run, key="loop[2]")).status == "running"
    await store.close({"status": "succeeded"})


async def test_a_row_that_ends_within_an_interval_is_written_once_and_a_long_one_while_it_runs(
    owner: Any,
) -> None:
    """A row that only started waits an interval before it is written: most end first and
    are written once, ended (a quarter of bench g's rows were written twice); one that runs
    on is written as running by the flusher, with no other event to carry it. The wire shows
    it as running from its start all the same."""
    from engine.store import RunStore, _written_rows

    run = await sync_to_async(new_run)(owner, [{"v": 1}, {"v": 2}])
    written: list[tuple[str, str]] = []
    sent: list[list[tuple[str, str]]] = []

    class Watched(RunStore):
        def _statements(self, connection: Any, delta: dict[str, Any]) -> Any:
            items, steps = _written_rows(delta)
            written.extend((r["key"], r["status"]) for r in items)
            written.extend((f"{r['item_key']}/{r['block_id']}", r["status"]) for r in steps)
            return super()._statements(connection, delta)

        async def _send(self, delta: dict[str, Any]) -> None:
            sent.append([(r["key"], r["status"]) for r in delta["items"]])

    store = Watched(run.pk, interval=0.3, publish=True)
    store.start()
    bus = items_begun(store, 2, step="fetch")
    bus.emit("step.finished", block="fetch", name="fetch", item="loop[0]", output={"x": 1})
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=0.01)
    await store._flush()  # a batch as the flusher cuts it, at once
    assert written == [("loop[0]", "succeeded"), ("loop[0]/fetch", "succeeded")]
    assert sent == [[("loop[0]", "succeeded"), ("loop[1]", "running")]]  # both, on the wire
    started = time.monotonic()
    while not await ItemRun.objects.filter(run=run, key="loop[1]").aexists():
        assert time.monotonic() - started < 10, "the running row was never written"
        await asyncio.sleep(0.05)
    item = await ItemRun.objects.aget(run=run, key="loop[1]")
    step = await StepRun.objects.aget(run=run, item_key="loop[1]")
    assert item.status == step.status == "running" and item.data == {"v": 2}
    assert time.monotonic() - started >= 0.2  # not before it had run for an interval
    assert len(sent) == 1  # shown at its start already: the late write sends nothing
    bus.emit("step.finished", block="fetch", name="fetch", item="loop[1]", output={"x": 2})
    bus.emit("item.finished", item="loop[1]", loop="loop", index=1, duration=0.5)
    await store.close({"status": "succeeded"})
    assert written[2:] == [
        ("loop[1]", "running"),
        ("loop[1]/fetch", "running"),
        ("loop[1]", "succeeded"),
        ("loop[1]/fetch", "succeeded"),
    ]
    statuses = {row.key: row.status async for row in ItemRun.objects.filter(run=run)}
    assert statuses == {"loop[0]": "succeeded", "loop[1]": "succeeded"}
    await sync_to_async(connections.close_all)()


async def test_a_failed_write_of_rows_that_only_started_leaves_the_flusher_writing(
    owner: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch of rows that only started has no events of its own: its failure is logged
    like any other, and the flusher goes on (its message read the batch's first event, and
    the error it raised stopped the flusher for the rest of the run)."""
    from engine.store import RunStore

    run = await sync_to_async(new_run)(owner, [{"v": 1}])

    class Failing(RunStore):
        fail = True

        async def _write_on_loop(self, on_loop: Any, delta: dict[str, Any]) -> bool:
            if self.fail:
                raise RuntimeError("the database is away")
            return await super()._write_on_loop(on_loop, delta)

    store = Failing(run.pk, interval=0.1, publish=False)
    store.start()
    bus = items_begun(store, 1)
    await store._flush()  # the events' batch: fails, logged
    began = time.monotonic()
    while "(rows that started)" not in caplog.text:  # the flusher's batch of the aged row
        assert time.monotonic() - began < 10, "the aged row was never written"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert store._task is not None and not store._task.done()
    store.fail = False
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=0.01)
    began = time.monotonic()
    while not await ItemRun.objects.filter(run=run, key="loop[0]", status="succeeded").aexists():
        assert time.monotonic() - began < 10, "the flusher stopped writing"
        await asyncio.sleep(0.02)
    await store.close({"status": "succeeded"})
    await sync_to_async(connections.close_all)()


async def test_a_runs_end_goes_to_the_store_thread_in_one_hop_with_its_last_events(
    owner: Any,
) -> None:
    # The run's last event used to wake the flusher, which wrote a batch of its own just
    # before close() wrote the end: the end waited for two writes, one after the other.
    from engine.core.events import EventBus
    from engine.store import RunStore

    run = await sync_to_async(new_run)(owner, [{"v": 1}])
    flushed: list[int] = []

    class Counted(RunStore):
        async def _flush(self) -> None:
            flushed.append(len(self._pending))
            await super()._flush()

    store = Counted(run.pk, interval=3600, publish=False)  # no flush on the clock here
    bus = EventBus(store.sink)
    store.start()
    bus.emit("run.started", total_blocks=1, resumed=False)
    bus.emit("run.finished", status="succeeded", error=None)
    for _ in range(20):
        await asyncio.sleep(0)
    assert flushed == []
    await store.close({"outputs": {"done": True}})
    assert flushed == []
    ended = await Run.objects.aget(pk=run.pk)
    assert (ended.status, ended.outputs) == ("succeeded", {"done": True})
    await sync_to_async(connections.close_all)()


async def test_durable_never_outlives_the_flusher(owner: Any) -> None:
    """A store whose flusher stopped (a batch it could not fold) or never started lets
    waiting items go instead of holding their slots until the run is cancelled."""
    from engine.core.events import EventBus
    from engine.core.redaction import Redactor
    from engine.store import RunStore

    class Unfoldable(RunStore):
        def _apply(self, batch: Any) -> dict[str, Any]:
            raise ValueError("an event this store cannot fold")

    run = await sync_to_async(new_run)(owner, [{"v": 1}])
    never_started = RunStore(run.pk, interval=60, publish=False)
    EventBus(never_started.sink, Redactor()).emit("run.started")
    await asyncio.wait_for(never_started.durable(), 5)

    broken = Unfoldable(run.pk, interval=60, publish=False)
    broken.start()
    EventBus(broken.sink, Redactor()).emit("run.started")
    await asyncio.wait_for(broken.durable(), 5)  # the flusher died on it: no hang
    await asyncio.wait_for(broken.durable(), 5)  # and nothing waits on it afterwards
    assert broken._task is not None and broken._task.done()
    for store in (never_started, broken):
        store._thread.shutdown(wait=True)
    await sync_to_async(connections.close_all)()  # the async ORM's thread keeps one open


def test_merged_deltas_keep_each_row_once_at_its_latest_change() -> None:
    from engine.store import merged

    def item(key: str, status: str) -> dict[str, Any]:
        return {"key": key, "status": status}

    first = {
        "run": {"last_seq": 1},
        "items": [item("a", "running"), item("b", "running")],
        "steps": [
            {"item_key": "a", "block_id": "x", "status": "running"},
            {"item_key": "", "block_id": "t", "status": "running"},
        ],
        "not_started": [item("n", "not_started")],
        "blocks": {"x"},
    }
    later = {
        "run": {"last_seq": 2},
        "items": [item("c", "running"), item("a", "succeeded")],
        "steps": [
            {"item_key": "a", "block_id": "x", "status": "succeeded"},
            {"item_key": "", "block_id": "t", "status": "succeeded"},
        ],
        "not_started": [item("n", "not_started")],
        "blocks": {"y"},
    }
    both = merged(first, later)
    assert both["run"] == {"last_seq": 2}
    assert [(r["key"], r["status"]) for r in both["items"]] == [
        ("b", "running"),
        ("c", "running"),
        ("a", "succeeded"),  # changed last: last, so the wire shows it first
    ]
    # Only top-level steps go on the wire: an item's are not kept.
    assert [(r["block_id"], r["status"]) for r in both["steps"]] == [("t", "succeeded")]
    assert [r["key"] for r in both["not_started"]] == ["n"]
    assert both["blocks"] == {"x", "y"}


def test_merged_deltas_keep_what_the_wire_shows_and_count_the_rest() -> None:
    """An interval's batches merge into one delta holding the last WIRE_ITEMS rows changed
    (not every row: each merge went over all of them again) and every key changed, so the
    wire's count of the others stays exact, items changed twice counted once."""
    from engine.store import WIRE_ITEMS, merged, wire_items

    def batch(start: int, status: str) -> dict[str, Any]:
        rows = [{"key": f"loop[{i}]", "status": status} for i in range(start, start + 50)]
        return {"run": {"last_seq": start}, "items": rows, "steps": [], "blocks": set()}

    unsent = batch(0, "running")
    for start in range(0, 1000, 50):  # every item started, then each one ended
        unsent = merged(unsent, batch(start, "running" if start == 0 else "succeeded"))
    unsent = merged(unsent, batch(0, "succeeded"))
    assert len(unsent["items"]) == WIRE_ITEMS
    assert [r["key"] for r in unsent["items"]][-1] == "loop[49]"  # changed last
    shown, omitted = wire_items(unsent)
    assert [r["key"] for r in shown][:2] == ["loop[49]", "loop[48]"]
    assert {r["status"] for r in shown} == {"succeeded"}
    assert omitted == 1000 - WIRE_ITEMS
    never = {
        "run": {},
        "items": [],
        "steps": [],
        "blocks": set(),
        "not_started": [{"key": f"loop[{i}]", "status": "not_started"} for i in range(1000, 1100)],
    }
    shown, omitted = wire_items(merged(unsent, never))
    assert [r["key"] for r in shown][0] == "loop[1099]" and omitted == 1100 - WIRE_ITEMS


def _batch(owner: Any) -> tuple[Any, dict[str, Any]]:
    """A run and one batch of its rows (an item that started and a step that ended)."""
    from engine.store import RunStore

    run = new_run(owner, [{"v": 1}])
    store = RunStore(run.pk, interval=60, publish=False)
    bus = items_begun(store, 1, step="double")
    bus.emit("step.finished", block="double", name="double", item="loop[0]", output={"x": 2})
    delta = store._apply(store._pending, everything=True)  # the item too, though fresh
    store._pending = []
    return store, delta


def test_a_batch_is_one_round_trip_on_postgresql(owner: Any) -> None:
    """BEGIN, the upserts, the run row and COMMIT went as five waits of the store thread,
    each ended by taking the GIL back from a busy event loop, while loop items wait for
    the write (durable) before freeing their slot: now they go in one query."""
    from django.db import connection

    assert connection.vendor == "postgresql"  # the suite's database
    store, delta = _batch(owner)
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())  # libpq's log of the protocol's messages
        try:
            assert store._write(delta) is True
        finally:
            pgconn.untrace()
        trace.seek(0)
        messages = trace.read()
    # The server's ReadyForQuery ends each wait for an answer.
    assert messages.count("ReadyForQuery") == 1, messages
    assert Run.objects.get(pk=store.run_id).status == "running"
    assert ItemRun.objects.get(run_id=store.run_id, key="loop[0]").status == "running"
    step = StepRun.objects.get(run_id=store.run_id, block_id="double")
    assert step.status == "succeeded" and step.output == {"x": 2}


def test_a_batch_for_a_run_ended_elsewhere_says_so_and_rolls_back_nothing_else(
    owner: Any,
) -> None:
    """The run row's update decides whether the run is still ours (cancelled elsewhere)."""
    store, delta = _batch(owner)
    Run.objects.filter(pk=store.run_id).update(status="cancelled")
    assert store._write(delta) is False
    assert Run.objects.get(pk=store.run_id).status == "cancelled"
    assert StepRun.objects.filter(run_id=store.run_id, block_id="double").exists()


# Values jsonb refuses, and what the fallback stores instead: a NUL character, a float JSON
# cannot hold, a lone surrogate UTF-8 cannot hold.
REFUSED = [
    ("a\0b", "a\ufffdb"),
    (float("nan"), "NaN"),
    (float("-inf"), "-Infinity"),
    ("a\ud800b", "a?b"),
]


@pytest.mark.parametrize(("refused", "stored"), REFUSED)
async def test_batches_go_from_the_loop_and_a_value_jsonb_refuses_is_stored_as_text(
    owner: Any, refused: Any, stored: Any
) -> None:
    """On PostgreSQL a store writes its batches from the event loop (no hop to its thread,
    whose Python work competed with the loop for the GIL while items waited in `durable`);
    the run's end still goes through the thread, after the loop's connection is closed."""
    from engine.store import RunStore

    run = await sync_to_async(new_run)(owner, [{"v": 1}])
    threads: list[str] = []

    class Watched(RunStore):
        def _write(self, delta: dict[str, Any]) -> bool:
            threads.append("thread")
            return super()._write(delta)

    store = Watched(run.pk, interval=60, publish=False)
    store.start()
    assert store._on_loop is not None
    bus = items_begun(store, 1, step="double")
    # A value jsonb refuses: the batch is stored with it as text, the rest as it was.
    output = {"x": refused, "kept": [1.5, "ü"]}
    bus.emit("step.finished", block="double", name="double", item="loop[0]", output=output)
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=0.01)
    await asyncio.wait_for(store.durable(), 10)
    assert threads == []  # from the loop
    item = await ItemRun.objects.aget(run=run, key="loop[0]")
    step = await StepRun.objects.aget(run=run, block_id="double")
    assert item.status == step.status == "succeeded"
    assert step.output == {"x": stored, "kept": [1.5, "ü"]}
    on_loop = store._on_loop
    await store.close({"status": "succeeded"})
    assert on_loop._connection is None  # closed before the thread wrote the end
    assert (await Run.objects.aget(pk=run.pk)).status == "succeeded"
    await sync_to_async(connections.close_all)()


@pytest.mark.parametrize("failing", ["", "at_once", "at_commit", "big_outputs"])
async def test_the_end_goes_from_the_loop_with_the_last_batch_and_falls_back_to_the_thread(
    owner: Any, failing: str
) -> None:
    """At the run's end the batch left and the end go from the loop in one transaction; if
    any of it fails (at once, or at the commit: nothing of it stays), or the outputs are too
    big to encode on the loop, the thread stores the batch with the end."""
    from engine.core.events import EventBus
    from engine.core.redaction import Redactor
    from engine.store import LOOP_END_BYTES, RunStore

    run = await sync_to_async(new_run)(owner, [{"v": 1}, {"v": 2}])
    threads: list[int] = []
    seen: list[str] = []

    class Watched(RunStore):
        def _write_last(self, delta: Any, values: dict[str, Any]) -> Any:
            threads.append(len(delta["items"]) if delta else 0)
            return super()._write_last(delta, values)

    store = Watched(run.pk, interval=60, publish=False)  # no batch before the end
    store.start()
    assert store._on_loop is not None
    if failing in ("at_once", "at_commit"):
        results, calls = store._on_loop.results, []

        async def breaking(statements: Any) -> Any:
            calls.append(statements)
            if len(calls) > 1:  # the first query's end is not seen by others before COMMIT
                seen.append((await Run.objects.aget(pk=run.pk)).status)
            if failing == "at_once" or len(calls) > 1:
                raise RuntimeError("the loop's connection broke at the end")
            return await results(statements)

        store._on_loop.results = breaking  # type: ignore[method-assign]
    bus = EventBus(store.sink, Redactor())
    bus.emit("run.started")
    bus.emit("item.started", item="loop[0]", loop="loop", index=0, data={"v": 1})
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=0.01)
    # Reported started, never ended: the end cancels it.
    bus.emit("item.started", item="loop[1]", loop="loop", index=1, data={"v": 2})
    outputs = {"summary": {"text": "x" * (LOOP_END_BYTES if failing == "big_outputs" else 10)}}
    await store.close({"status": "succeeded", "outputs": outputs})
    assert threads == ([] if not failing else [2])
    assert seen == ([run.status] if failing == "at_commit" else [])
    items = {i.key: i async for i in ItemRun.objects.filter(run=run)}
    assert (items["loop[0]"].status, items["loop[1]"].status) == ("succeeded", "cancelled")
    assert items["loop[1]"].error == "cancelled while running: the run ended"
    ended = await Run.objects.aget(pk=run.pk)
    assert (ended.status, ended.succeeded, ended.cancelled) == ("succeeded", 1, 1)
    assert ended.outputs == outputs
    assert ended.blocks["loop"]["succeeded"] == 1 and ended.finished_at is not None
    await sync_to_async(connections.close_all)()


async def test_flush_waits_for_the_write_the_flusher_has_in_flight(owner: Any) -> None:
    """`flush()` (before a loop's chunks go out: they start from the stored rows) returns
    only once every event so far is written, those of a batch the flusher took just before
    too, when nothing is left for flush's own write."""
    from engine.store import RunStore

    run = await sync_to_async(new_run)(owner, [{"v": 1}])
    writing = asyncio.Event()
    release = asyncio.Event()

    class Slow(RunStore):
        async def _write_on_loop(self, on_loop: Any, delta: dict[str, Any]) -> bool:
            writing.set()
            await release.wait()
            return await super()._write_on_loop(on_loop, delta)

    store = Slow(run.pk, interval=60, publish=False)
    store.start()
    bus = items_begun(store, 1)
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=0.01)
    store._wake()  # the flusher takes the batch and holds it in its write
    await asyncio.wait_for(writing.wait(), 10)
    flushing = asyncio.ensure_future(store.flush())
    await asyncio.sleep(0.2)
    assert not flushing.done()  # the item's row is not stored yet
    release.set()
    await asyncio.wait_for(flushing, 10)
    assert (await ItemRun.objects.aget(run=run, key="loop[0]")).status == "succeeded"
    await store.close({"status": "succeeded"})
    await sync_to_async(connections.close_all)()


async def test_batches_renew_the_lease_once_a_tenth_of_it_has_passed(
    owner: Any, settings: Any
) -> None:
    """`lease_expires` is indexed: a batch that changes it cannot be a HOT update, so batches
    renew the lease only once a tenth of it has passed since the last renewal (and still
    write the counters each time); a heartbeat, with nothing else to write, always renews."""
    from engine.store import RunStore

    settings.KLYNTOS_RUN_LEASE_SECONDS = 10  # renewed every second
    run = await sync_to_async(new_run)(owner, [{"v": 1}, {"v": 2}, {"v": 3}])
    claimed = timezone.now()
    await Run.objects.filter(pk=run.pk).aupdate(lease_owner="me", lease_expires=claimed)
    store = RunStore(run.pk, interval=60, publish=False, lease_owner="me")
    store.start()
    bus = items_begun(store, 3)

    async def finish(index: int) -> Run:
        bus.emit("item.finished", item=f"loop[{index}]", loop="loop", index=index, duration=0.01)
        await asyncio.wait_for(store.durable(), 10)
        return await Run.objects.aget(pk=run.pk)

    first = await finish(0)
    assert first.lease_expires is not None and first.lease_expires > claimed  # its first
    second = await finish(1)
    assert second.lease_expires == first.lease_expires  # within the second: not renewed
    assert first.last_seq < second.last_seq  # the run's part of the batch is, each time
    await asyncio.sleep(1.05)
    third = await finish(2)
    assert third.lease_expires is not None and third.lease_expires > first.lease_expires
    assert third.last_seq > second.last_seq
    assert "lease_expires" in store._run_values({})  # the heartbeat's
    await store.close({"status": "succeeded"})
    await sync_to_async(connections.close_all)()


@pytest.mark.parametrize("failing", [False, True])
async def test_a_suspend_stores_its_last_rows_and_gives_the_lease_back_from_the_loop(
    owner: Any, failing: bool
) -> None:
    """A graceful stop's last batch and the lease's release go in one transaction from the
    event loop; if that write fails, the store thread writes both, as without a loop
    connection."""
    from engine.core.events import EventBus
    from engine.core.redaction import Redactor
    from engine.store import RunStore

    run = await sync_to_async(new_run)(owner, [{"v": 1}])
    await Run.objects.filter(pk=run.pk).aupdate(lease_owner="me", lease_expires=timezone.now())
    threads: list[str] = []

    class Watched(RunStore):
        def _write_and_release(self, delta: dict[str, Any] | None) -> None:
            threads.append("thread")
            super()._write_and_release(delta)

        async def _suspend_on_loop(self, delta: dict[str, Any] | None) -> bool:
            if failing and self._on_loop is not None:

                async def broken(statements: Any) -> int:
                    raise RuntimeError("the loop's connection broke at the stop")

                self._on_loop.transaction = broken  # type: ignore[method-assign]
            return await super()._suspend_on_loop(delta)

    store = Watched(run.pk, interval=60, publish=False, lease_owner="me")
    store.start()
    bus = EventBus(store.sink, Redactor())
    bus.emit("run.started")
    bus.emit("item.started", item="loop[0]", loop="loop", index=0, data={"v": 1})
    bus.emit("item.finished", item="loop[0]", loop="loop", index=0, duration=0.01)
    await store.suspend()
    assert threads == (["thread"] if failing else [])
    item = await ItemRun.objects.aget(run=run, key="loop[0]")
    assert item.status == "succeeded"
    stopped = await Run.objects.aget(pk=run.pk)
    assert (stopped.status, stopped.lease_owner) == ("running", "")
    await sync_to_async(connections.close_all)()


def test_a_body_block_runs_while_its_loop_does_whatever_its_own_steps_do_this_moment() -> None:
    """Between two items none of a body block's steps may run: its state follows its loop's
    (a fast step, a database write, read `succeeded` for most of a 600-lead run)."""
    from engine.store import _wire, loops_of_graph, wire_blocks

    loop_of = loops_of_graph(
        [
            {"id": "loop", "type": "loop"},
            {"id": "store", "type": "database", "parent": "loop"},
            {"id": "later", "type": "database", "parent": "loop"},
            {"id": "slack", "type": "slack"},
        ]
    )
    assert loop_of == {"store": "loop", "later": "loop"}
    going = {"succeeded": 30, "running": 10, "total": 600, "step_running": 1, "step_failed": 0}
    counters = {"loop": going, "store": {"succeeded": 30}, "slack": {}}

    def statuses(counters: dict[str, Any], *, ended: bool = False) -> dict[str, str]:
        states = wire_blocks(
            counters, ["loop", "store", "later", "slack"], ended=ended, loop_of=loop_of
        )
        return {block: state["status"] for block, state in states.items()}

    assert statuses(counters) == {
        "loop": "running",
        "store": "running",  # none running this moment: its counts still say ✓ 30
        "later": "pending",  # nothing counted yet: not started, not running
        "slack": "pending",
    }
    assert (
        wire_blocks(counters, ["store"], ended=False, loop_of=loop_of)["store"]["succeeded"] == 30
    )
    done = {**counters, "loop": {**going, "running": 0, "succeeded": 600, "step_running": 0}}
    assert statuses({**done, "store": {"succeeded": 600}})["store"] == "succeeded"
    assert statuses(counters, ended=True)["store"] == "succeeded"  # a cancel's end: final
    # Without the graph's map (an older caller), a block is painted from its own counts.
    assert wire_blocks(counters, ["store"], ended=False)["store"]["status"] == "succeeded"
    # A run stopped by its budget: 37 items reached the block, 63 never started. The block
    # is not `succeeded` (it read ✓37 beside 63 leads never enriched); its ⊘ counts them.
    budget = {"succeeded": 37, "not_started": 63, "total": 100, "step_running": 0}
    stopped = wire_blocks(
        {"loop": budget, "store": {"succeeded": 37}}, ["store"], ended=True, loop_of=loop_of
    )["store"]
    assert (stopped["status"], stopped["succeeded"], stopped["not_started"]) == (
        "partially_succeeded",
        37,
        63,
    )
    assert stopped["total"] == 100
    # A branch two items did not take (run_if) is no stop: nothing is added.
    branch = {"succeeded": 20, "total": 20, "step_running": 0}
    taken = wire_blocks(
        {"loop": branch, "store": {"succeeded": 18}}, ["store"], ended=True, loop_of=loop_of
    )["store"]
    assert (taken["status"], taken["not_started"]) == ("succeeded", 0)
    # Cancelled: those in flight and those never started, at most what did not reach it.
    cancelled = {"succeeded": 20, "cancelled": 5, "not_started": 75, "total": 100}
    after = wire_blocks(
        {"loop": {**cancelled, "step_running": 0}, "store": {"succeeded": 20}},
        ["store"],
        ended=True,
        loop_of=loop_of,
    )["store"]
    assert (after["status"], after["not_started"]) == ("partially_succeeded", 80)

    # A delta that touches the loop carries its body blocks' states too: the loop's end
    # turns them final although their own counts did not change.
    delta = {"run": {"last_seq": 3, "blocks": done}, "items": [], "steps": [], "blocks": {"loop"}}
    assert set(_wire(delta, loop_of)["blocks"]) == {"loop", "store", "later"}
    assert set(_wire(delta)["blocks"]) == {"loop"}
