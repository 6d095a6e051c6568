"""Slot leases in PostgreSQL (engine/slots.py): real connections and real processes contend
for a key's slots against the test database; a holder killed with -9 frees its slot when its
lease runs out; cancelling gives back; nested loops on real slots finish; and with two real
workers, a provider cap holds across both."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.utils import timezone

from builder.gallery import template_instantiate
from builder.services import run_start
from engine.config import build_services, provider_registry
from engine.models import FINAL_STATUSES, ItemRun, Run, Slot, StepRun
from engine.slots import ClusterSlots, check_settings, conninfo
from simulator.testing import RunningSimulator, peak_concurrency
from tests.engine.core.graphkit import block, graph
from tests.engine.core.test_slots import run_with
from tests.engine.management.test_worker import start_workers, stop_workers, wait_until
from tests.engine.test_provider_limits import leads_of

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ROOT = Path(__file__).resolve().parents[2]

# One process holding slots of `key`: `count` holders, each takes a slot, notes when it held
# it (after the take returned, before the give-back: inside the real holding time) and holds
# it `seconds`. Prints one JSON line per hold, then "done".
HOLDER = """
import asyncio, json, sys, time
from engine.slots import ClusterSlots

async def main(info, key, cap, count, seconds, lease):
    slots = ClusterSlots(info, lease=lease, poll=0.2)
    async def one():
        async with slots.hold(key, cap) as number:
            began = time.time()
            await asyncio.sleep(seconds)
            print(json.dumps({"number": number, "from": began, "to": time.time()}), flush=True)
    await asyncio.gather(*(one() for _ in range(count)))
    print(json.dumps({"stats": slots.stats.__dict__}), flush=True)
    await slots.aclose()

info, key, cap, count, seconds, lease = sys.argv[1:]
asyncio.run(main(info, key, int(cap), int(count), float(seconds), float(lease)))
"""

# Takes one slot, says so, and holds it until killed.
SQUATTER = """
import asyncio, sys
from engine.slots import ClusterSlots

async def main(info, key, lease):
    slots = ClusterSlots(info, lease=lease, poll=0.2)
    async with slots.hold(key, 1):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


# One execution of a run's loop (what a chunk's worker runs): the core's executor with slots
# in PostgreSQL, on the simulator; starts on "go" so that two processes overlap.
EXECUTION = """
import asyncio, json, sys
from engine.blocks import REGISTRY
from engine.core.events import EventBus
from engine.core.executor import Executor
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.services import Services
from engine.slots import ClusterSlots

async def main(info, base_url, graph, body, run_id):
    slots = ClusterSlots(info, lease=10, poll=0.2)
    outbound = OutboundFactory(OutboundConfig(host_overrides={"api.clearbit.com": base_url}))
    services = Services(outbound=outbound, slots=slots, run_id=run_id)
    engine = Executor(
        parse_graph(json.loads(graph)), REGISTRY, bus=EventBus(lambda e: None), services=services
    )
    async with slots.hold("warm-up", 1):  # connections open before the start
        pass
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        outcome = await engine.run(json.loads(body))
    finally:
        await services.aclose()
        await slots.aclose()
    print(outcome.status, flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


def python(script: str, *args: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.Popen(  # noqa: S603 -- our own script
        [sys.executable, "-c", script, *map(str, args)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def needs_postgresql() -> None:
    if not django_settings.ON_POSTGRESQL:
        pytest.fail("slot leases need PostgreSQL (DATABASE_URL)")


def test_two_processes_never_hold_more_than_the_cap() -> None:
    needs_postgresql()
    holders = [python(HOLDER, conninfo(), "contended", 3, 15, 0.05, 30) for _ in range(2)]
    outputs = [holder.communicate(timeout=120) for holder in holders]
    spans: list[tuple[float, float]] = []
    statements = holds = 0
    for holder, (out, err) in zip(holders, outputs, strict=True):
        assert holder.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        spans += [(line["from"], line["to"]) for line in lines if "number" in line]
        assert all(0 <= line["number"] < 3 for line in lines if "number" in line)
        stats = lines[-1]["stats"]
        statements += stats["takes"] + stats["gives"]
        holds += stats["taken"] + stats["reused"]  # a take, or a slot this process kept
    assert len(spans) == holds == 30
    assert most_at_once(spans) == 3  # the cap reached, never passed, across both processes
    assert not Slot.objects.exclude(owner="").exists()  # every slot given back
    # At most a take and a give-back per hold, plus the tries of holders that had to wait.
    assert statements < 30 * 8, statements


def test_one_process_keeps_its_slots_for_its_next_holders() -> None:
    """Holds that follow each other in one process reuse the slots it took (no statement
    per hold); the kept slots go back after the linger, and the cap holds meanwhile."""
    needs_postgresql()

    async def scenario() -> tuple[Any, int, int]:
        slots = ClusterSlots(conninfo(), lease=30, poll=0.5, linger=0.5)
        held = peak = 0

        async def one() -> None:
            nonlocal held, peak
            async with slots.hold("kept", 5) as number:
                assert 0 <= number < 5
                held += 1
                peak = max(peak, held)
                await asyncio.sleep(0.001)
                held -= 1

        try:
            for _ in range(10):
                await asyncio.gather(*(one() for _ in range(10)))
            kept = slots.kept()
            await asyncio.sleep(1.2)  # past the linger: given back, in one statement
            return slots.stats, kept, peak
        finally:
            await slots.aclose()

    stats, kept, peak = async_to_sync(scenario)()
    assert peak == 5
    assert kept == 5
    assert stats.taken + stats.reused == 100
    assert stats.takes <= 5 + 10, stats  # the first takes, and the misses of the first round
    assert stats.gives == 1 and stats.given == 5, stats
    assert not Slot.objects.exclude(owner="").exists()


def test_holders_that_start_together_in_one_process_never_queue_below_the_cap() -> None:
    """Fifty holds of a key with a cap of 100 start at once in one process (a chunk's first
    items): their takes run together on the pool's connections and pick the same lowest
    missing number, so all but one INSERT find it made. Such a miss is tried again at once,
    not answered by a line of waiters (each then waiting for a hand-over, one per turn of
    the event loop, for as long as holds keep coming)."""
    needs_postgresql()

    async def scenario() -> Any:
        slots = ClusterSlots(conninfo(), lease=30, poll=0.5, linger=0.5)

        async def one() -> None:
            async with slots.hold("together", 100) as number:
                assert 0 <= number < 100
                await asyncio.sleep(0.01)

        try:
            for _ in range(4):
                await asyncio.gather(*(one() for _ in range(50)))
            return slots.stats
        finally:
            await slots.aclose()

    stats = async_to_sync(scenario)()
    assert stats.waits == 0, stats
    assert stats.taken + stats.reused == 200
    assert stats.taken <= 50, stats  # later rounds reuse what the first took


def test_a_kept_slot_goes_to_another_process_that_wants_it_at_once() -> None:
    """A process keeps a slot nobody uses here for up to its linger; another process's miss
    says it wants the key, and the kept slot goes back then, not after the linger."""
    needs_postgresql()

    async def scenario() -> tuple[float, int]:
        one = ClusterSlots(conninfo(), lease=30, poll=10, linger=10)
        two = ClusterSlots(conninfo(), lease=30, poll=10, linger=10)
        try:
            async with one.hold("wanted", 1):
                pass
            assert one.kept() == 1
            started = time.monotonic()
            async with asyncio.timeout(5):
                async with two.hold("wanted", 1) as number:
                    took = time.monotonic() - started
            return took, number
        finally:
            await one.aclose()
            await two.aclose()

    took, number = async_to_sync(scenario)()
    assert number == 0
    assert took < 2, took  # a round of NOTIFYs, not the linger (10 s) nor a poll (10 s)
    assert not Slot.objects.exclude(owner="").exists()


def test_a_loop_cap_holds_across_two_processes_running_one_run(
    simulator: RunningSimulator,
) -> None:
    """Two processes execute items of the same run's loop (cap 3) at once, as two workers
    executing chunks of it do: the upstream sees the loop's cap, not the cap per process."""
    needs_postgresql()
    simulator.control.configure(latency_ms=80)
    lookup = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"
    loop = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>", max_concurrent=3),
            block("fetch", "http", "loop", url=lookup, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "loop")],
    )
    executions = [
        python(
            EXECUTION,
            conninfo(),
            simulator.base_url,
            json.dumps(loop),
            json.dumps({"items": [{"domain": f"{p}{i}.io"} for i in range(12)]}),
            "run-x",
        )
        for p in "ab"
    ]
    try:
        for execution in executions:
            assert execution.stdout is not None and execution.stdin is not None
            assert execution.stdout.readline().strip() == "ready", execution.stderr
        for execution in executions:
            assert execution.stdin is not None
            execution.stdin.write("go\n")
            execution.stdin.flush()
        outputs = [execution.communicate(timeout=120) for execution in executions]
    finally:
        for execution in executions:
            execution.kill()
    assert [out.strip() for out, _ in outputs] == ["succeeded", "succeeded"], outputs
    received = simulator.control.stats()["received"]
    assert len(received) == 24
    peak, _, _ = peak_concurrency(received)
    assert peak == 3, peak
    assert set(Slot.objects.values_list("key", flat=True)) >= {"loop:run-x:loop:"}
    assert not Slot.objects.exclude(owner="").exists()


def test_a_holder_killed_with_minus_9_frees_its_slot_when_its_lease_runs_out() -> None:
    needs_postgresql()
    lease = 2.0
    squatter = python(SQUATTER, conninfo(), "killed", lease)
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline().strip() == "held", squatter.stderr
        took = async_to_sync(wait_for_the_slot)(squatter, lease)
    finally:
        squatter.kill()
        squatter.wait()
    # Not before the kill (its heartbeat renewed the lease past its length), and within the
    # lease plus a poll after it.
    assert lease - 0.5 <= took < lease + 3, took


async def wait_for_the_slot(squatter: subprocess.Popen[str], lease: float) -> float:
    slots = ClusterSlots(conninfo(), lease=lease, poll=0.2)
    try:
        with pytest.raises(TimeoutError):  # alive for longer than a lease: still held
            await asyncio.wait_for(slots.acquire("killed", 1), lease * 1.5)
        squatter.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        async with slots.hold("killed", 1) as number:
            assert number == 0
            return time.monotonic() - killed
    finally:
        await slots.aclose()


def test_cancelling_gives_back_what_was_held_and_what_was_waited_for() -> None:
    needs_postgresql()

    async def scenario() -> None:
        one, two = (ClusterSlots(conninfo(), lease=5, poll=0.2) for _ in range(2))
        try:
            # A holder cancelled while holding gives its slot back at once.
            entered = asyncio.Event()

            async def hold_forever() -> None:
                async with one.hold("cancel", 1):
                    entered.set()
                    await asyncio.sleep(3600)

            holder = asyncio.create_task(hold_forever())
            await entered.wait()
            # A waiter cancelled while waiting leaves nothing behind.
            waiter = asyncio.create_task(two.acquire("cancel", 1))
            await asyncio.sleep(0.3)
            assert not waiter.done()
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            holder.cancel()
            with pytest.raises(asyncio.CancelledError):
                await holder
            assert one.holding() == two.holding() == 0
            async with asyncio.timeout(2):  # free now: no lease to wait for
                async with two.hold("cancel", 1) as number:
                    assert number == 0
            # Cancelled while its take is in flight: whatever it took is given back.
            for _ in range(20):
                taking = asyncio.create_task(one.acquire("in-flight", 1))
                await asyncio.sleep(0.001)
                taking.cancel()
                try:
                    number, owner = await taking
                except asyncio.CancelledError:
                    continue
                await one.release("in-flight", number, owner)
        finally:
            await one.aclose()
            await two.aclose()

    async_to_sync(scenario)()
    assert not Slot.objects.exclude(owner="").exists()


def test_the_heartbeat_renews_only_live_holds_and_old_free_rows_are_collected() -> None:
    needs_postgresql()

    async def scenario() -> tuple[int, int, int]:
        slots = ClusterSlots(conninfo(), lease=60, poll=0.2)
        try:
            number, owner = await slots.acquire("renewed", 2)
            lost, lost_owner = await slots.acquire("renewed", 2)
            await slots.release("renewed", lost, lost_owner)
            # Another process's hold, and a hold whose lease this process gave up on: the
            # renewal leaves both alone.
            await asyncio.to_thread(
                Slot.objects.filter(key="renewed", number=lost).update,
                owner="elsewhere:1",
                process="elsewhere",
                expires=timezone.now() + dt.timedelta(seconds=5),
            )
            await asyncio.to_thread(
                Slot.objects.filter(key="renewed", number=number).update,
                expires=timezone.now() + dt.timedelta(seconds=5),
            )
            renewed = await slots.renew()
            # Free for an hour, expired an hour ago, free a moment ago: the first two go.
            hour_ago = timezone.now() - dt.timedelta(hours=1)
            await asyncio.to_thread(
                Slot.objects.bulk_create,
                [
                    Slot(key="old", number=0, owner="", process="", expires=hour_ago),
                    Slot(key="old", number=1, owner="dead:1", process="dead", expires=hour_ago),
                    Slot(key="old", number=2, owner="", process="", expires=timezone.now()),
                ],
            )
            collected = await slots.collect(age=600)
            await slots.release("renewed", number, owner)
            return number, renewed, collected
        finally:
            await slots.aclose()

    number, renewed, collected = async_to_sync(scenario)()
    assert renewed == 1
    assert collected == 2
    assert list(Slot.objects.filter(key="old").values_list("number", flat=True)) == [2]
    elsewhere = Slot.objects.get(key="renewed", owner="elsewhere:1")
    assert elsewhere.expires < timezone.now() + dt.timedelta(seconds=10)  # not renewed


def test_nested_loops_on_postgresql_slots_finish(simulator: RunningSimulator) -> None:
    """Caps of 1 on an outer and an inner loop, two executions of the same run (two
    workers of a chunked loop) on slots in PostgreSQL: an outer item holds its own slot and
    its inner items take slots of their own key, so nothing deadlocks and no key ever has
    more than its cap."""
    needs_postgresql()
    simulator.control.configure(latency_ms=5)
    lookup = "https://api.clearbit.com/v2/companies/find?domain=<item.domain>"
    nested = graph(
        [
            block("webhook", "webhook"),
            block("outer", "loop", items="<webhook.body.groups>", max_concurrent=1),
            block("inner", "loop", "outer", items="<item.members>", max_concurrent=1),
            block("fetch", "http", "inner", url=lookup, headers={"Authorization": "Bearer k"}),
        ],
        [("webhook", "outer")],
    )

    def body(prefix: str) -> dict[str, Any]:
        return {
            "groups": [
                {"members": [{"domain": f"{prefix}{g}m{m}.io"} for m in range(3)]} for g in range(3)
            ]
        }

    async def both() -> list[Any]:
        slots = [ClusterSlots(conninfo(), lease=5, poll=0.2) for _ in range(2)]
        try:
            return await asyncio.wait_for(
                asyncio.gather(
                    *(
                        run_with(nested, body(p), simulator, s, "run-n")
                        for p, s in zip("ab", slots, strict=True)
                    )
                ),
                60,
            )
        finally:
            for s in slots:
                await s.aclose()

    outcomes = async_to_sync(both)()
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    peak, _, _ = peak_concurrency(simulator.control.stats()["received"])
    assert peak == 1  # every level's cap of 1 held across both executions
    keys = set(Slot.objects.values_list("key", flat=True))
    assert keys == {
        "loop:run-n:outer:",
        *(f"loop:run-n:inner:outer[{g}]" for g in range(3)),
    }
    assert not Slot.objects.exclude(owner="").exists()


def test_services_hold_slots_with_workers_and_none_inline(settings: Any) -> None:
    needs_postgresql()

    async def built() -> tuple[Any, Any, Any]:
        services = build_services(run_id="r-1")
        registry = provider_registry()
        try:
            return services.slots, services.run_id, registry.cluster
        finally:
            await services.aclose()

    settings.KLYNTOS_EXECUTOR = "inline"
    assert async_to_sync(built)() == (None, "r-1", None)
    settings.KLYNTOS_EXECUTOR = "workers"
    slots, run_id, cluster = async_to_sync(built)()
    assert isinstance(slots, ClusterSlots) and cluster is slots and run_id == "r-1"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KLYNTOS_SLOT_LEASE_SECONDS", 0, "KLYNTOS_SLOT_LEASE_SECONDS must be a positive"),
        ("KLYNTOS_SLOT_POLL_SECONDS", 60, "KLYNTOS_SLOT_POLL_SECONDS must not be longer"),
        ("KLYNTOS_SLOT_CONNECTIONS", 0, "KLYNTOS_SLOT_CONNECTIONS must be between 1 and 100"),
    ],
)
def test_a_slot_setting_that_cannot_work_is_refused(
    settings: Any, name: str, value: float, message: str
) -> None:
    setattr(settings, name, value)
    with pytest.raises(ValueError, match=message):
        check_settings()


def test_a_provider_cap_holds_across_two_workers(
    owner: Any, simulator: RunningSimulator, settings: Any
) -> None:
    """Issue 8's acceptance on workers: provider cap 4 on the Clearbit host, two runs of 100
    leads started together on two worker processes: the upstream never sees more than 4
    Clearbit calls in flight, and sees 4. Each worker's own limit is 4 (AIMD starts at the
    cap) and each takes 4 items at once, so without the cluster's slots it would see 8."""
    settings.KLYNTOS_EXECUTOR = "workers"
    simulator.control.configure(latency_ms=40)
    # Clearbit answers nothing until released: the calls let through pile up to the cap
    # and stay there (that a step waiting for a cluster slot says so, reason `cluster`, is
    # the core's test).
    simulator.control.configure(hold=[{"endpoint": "clearbit"}])
    workflow = template_instantiate(owner=owner, slug="parallel-lead-enrichment")
    workers = start_workers(
        simulator,
        concurrency=1,  # one run each: the second run goes to the other worker
        KLYNTOS_PROVIDER_LIMITS="api.clearbit.com=concurrency:4;start:1",
        KLYNTOS_SLOT_POLL_SECONDS="0.5",
        SLACK_BOT_TOKEN=settings.SLACK_BOT_TOKEN,  # the simulator's
        OPENAI_API_KEY=settings.OPENAI_API_KEY,
    )
    try:
        runs = [
            run_start(workflow=workflow, input={"leads": leads_of(name, 100)})[0]
            for name in ("a", "b")
        ]
        wait_until(lambda: simulator.control.stats()["held"]["clearbit"] == 4, 120, "4 held")
        time.sleep(1)  # the other items keep waiting: nobody passes the cap
        assert simulator.control.stats()["held"]["clearbit"] == 4
        simulator.control.release()
        wait_until(
            lambda: (
                Run.objects.filter(pk__in=[r.pk for r in runs], status__in=FINAL_STATUSES).count()
                == 2
            ),
            240,
            "two runs of 100 leads on two workers",
        )
    finally:
        simulator.control.release()
        stop_workers(workers)
    for run in Run.objects.filter(pk__in=[r.pk for r in runs]):
        assert run.status == "succeeded", run.error
        assert (run.total, run.succeeded) == (100, 100)
    received = simulator.control.stats()["received"]
    clearbit = [r for r in received if r.get("endpoint") == "clearbit"]
    assert len(clearbit) == 200
    peak, _, _ = peak_concurrency(clearbit)
    assert peak == 4, peak
    assert not StepRun.objects.filter(run__in=runs, status="waiting").exists()
    ran = set(ItemRun.objects.filter(run__in=runs).values_list("worker", flat=True))
    assert len(ran) == 2, ran  # both workers ran items: the cap was shared
    assert not Slot.objects.exclude(owner="").exists()


def test_close_ends_a_heartbeat_whose_cancel_was_swallowed() -> None:
    """On Python 3.11 a cancel that arrives as the pool hands a connection over is lost
    inside `renew()` (`asyncio.wait_for` returns the connection): the heartbeat went on
    renewing for ever and `aclose()` waited for it (a CI job stalled). It stops now."""
    needs_postgresql()

    async def scenario() -> bool:
        slots = ClusterSlots(conninfo(), lease=3, poll=0.2)
        number, owner = await slots.acquire("swallowed", 1)
        renewing = asyncio.Event()

        async def renew_losing_its_cancel() -> int:
            renewing.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                return 0  # the cancel lost on the way, as psycopg_pool's wait_for did
            return 0

        slots.renew = renew_losing_its_cancel  # type: ignore[method-assign]
        await asyncio.wait_for(renewing.wait(), 10)  # the heartbeat is inside renew()
        await slots.release("swallowed", number, owner)
        await slots.aclose()
        return True

    # On a thread of its own: a close that cannot end would also hang its loop's teardown,
    # and the test is to fail, not to stall the suite.
    ended: list[bool] = []
    thread = threading.Thread(target=lambda: ended.append(asyncio.run(scenario())), daemon=True)
    thread.start()
    thread.join(30)
    assert ended == [True], "aclose() waited for a heartbeat that lost its cancel"
