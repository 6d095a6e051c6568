"""Durable runs: an execution holds a lease, a graceful stop stores what is done and gives
the run back, and the next execution resumes it from its rows without repeating a succeeded
step (issue 8 items 2 and 3)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from engine import leases
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run, executor
from simulator.testing import RunningSimulator
from tests.engine.test_runner import make_run, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ITEMS = 30
CAP = 3


def lookups(owner: Any, items: int = ITEMS, **loop_config: Any) -> Run:
    """Per item: a Clearbit lookup, then a LinkedIn lookup that reads it; after the loop one
    Slack-like step (a LinkedIn call) that must run once."""
    blocks = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
        {
            "id": "loop",
            "type": "loop",
            "name": "loop",
            "config": {"items": "<webhook.body.items>", "max_concurrent": CAP, **loop_config},
        },
        {
            "id": "company",
            "type": "http",
            "name": "company",
            "parent": "loop",
            "config": {
                "url": "https://api.clearbit.com/v2/companies/find?domain=<item.d>",
                "headers": {"Authorization": "Bearer k"},
            },
        },
        {
            "id": "person",
            "type": "http",
            "name": "person",
            "parent": "loop",
            "config": {
                "url": "https://api.linkedin.com/v2/people?domain=<item.d>&email=ceo@<item.d>&n=<company.status>",
                "headers": {"Authorization": "Bearer k"},
            },
        },
        {
            "id": "after",
            "type": "http",
            "name": "after",
            "config": {
                "url": "https://api.linkedin.com/v2/people?domain=after.io&email=ceo@after.io&n=<loop.succeeded>",
                "headers": {"Authorization": "Bearer k"},
            },
        },
    ]
    edges = [("webhook", "loop"), ("company", "person"), ("loop", "after")]
    body = {"items": [{"d": f"d{i}.io"} for i in range(items)]}
    return make_run(owner, blocks, edges, body)


def calls_by_domain(simulator: RunningSimulator, endpoint: str) -> Counter[str]:
    received = simulator.control.stats()["received"]
    return Counter(
        str((r.get("query") or {}).get("domain")) for r in received if r.get("endpoint") == endpoint
    )


async def succeeded_items(run_id: Any) -> int:
    return await ItemRun.objects.filter(run_id=run_id, status="succeeded").acount()


def interrupt_engines() -> None:
    for engine in list(executor._engines):
        engine.interrupt()


async def stop_past_the_drain_time(task: asyncio.Task[Any], simulator: RunningSimulator) -> None:
    """What the process does once the drain time is over: it cancels what is left (the
    steps in flight), then the held calls are let go."""
    executor.stopping = True
    try:
        interrupt_engines()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        executor.stopping = False
        simulator.control.release()


async def test_a_graceful_stop_gives_the_run_back_and_a_resume_repeats_no_call(
    owner: Any, simulator: RunningSimulator
) -> None:
    run = await sync_to_async(lookups)(owner)
    task = asyncio.create_task(execute_run(run.pk))

    async def a_third_done() -> bool:
        return await succeeded_items(run.pk) >= ITEMS // 3

    await wait_for(a_third_done)
    interrupt_engines()  # what a SIGTERM does: start no more items, finish those in flight
    await asyncio.wait_for(task, timeout=20)

    stopped = await Run.objects.aget(pk=run.pk)
    assert stopped.status == "running" and stopped.finished_at is None
    assert stopped.lease_owner == "" and stopped.running == 0  # given back, to be resumed
    done_before = await succeeded_items(run.pk)
    assert ITEMS // 3 <= done_before < ITEMS
    assert not await ItemRun.objects.filter(run_id=run.pk, status="running").aexists()
    assert not await StepRun.objects.filter(run_id=run.pk, block_id="after").aexists()
    assert run.pk in await sync_to_async(leases.resumable)()
    first = await ItemRun.objects.aget(run_id=run.pk, key="loop[0]")

    await execute_run(run.pk)  # the next start
    resumed = await Run.objects.aget(pk=run.pk)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.resumes == 1 and resumed.succeeded == ITEMS and resumed.total == ITEMS
    assert resumed.started_at == stopped.started_at  # one run, started once
    assert resumed.outputs["loop"]["succeeded"] == ITEMS
    assert resumed.outputs["after"]["status"] == 200
    # An item done before the stop keeps when and where it ran.
    again = await ItemRun.objects.aget(run_id=run.pk, key="loop[0]")
    assert (again.started_at, again.duration, again.worker) == (
        first.started_at,
        first.duration,
        first.worker,
    )
    assert first.worker and first.duration is not None
    # No call was made twice: every in-flight item finished before the stop.
    assert calls_by_domain(simulator, "clearbit") == {f"d{i}.io": 1 for i in range(ITEMS)}
    people = calls_by_domain(simulator, "linkedin")
    assert people.pop("after.io") == 1 and people == {f"d{i}.io": 1 for i in range(ITEMS)}
    assert await StepRun.objects.filter(run_id=run.pk, status="succeeded").acount() == (
        1 + 1 + 2 * ITEMS + 1
    )
    await sync_to_async(connections.close_all)()


async def test_a_stop_past_the_drain_time_reruns_only_the_items_in_flight(
    owner: Any, simulator: RunningSimulator
) -> None:
    simulator.control.configure(hold=[{"endpoint": "linkedin", "match": {"domain": "d12.io"}}])
    run = await sync_to_async(lookups)(owner)
    task = asyncio.create_task(execute_run(run.pk))

    async def held() -> bool:
        return bool(simulator.control.stats()["held"].get("linkedin"))

    await wait_for(held)
    await stop_past_the_drain_time(task, simulator)
    stopped = await Run.objects.aget(pk=run.pk)
    assert stopped.status == "running" and stopped.lease_owner == ""
    item = await ItemRun.objects.aget(run_id=run.pk, key="loop[12]")
    step = await StepRun.objects.aget(run_id=run.pk, item_key="loop[12]", block_id="company")
    assert item.status == "cancelled" and step.status == "succeeded"
    # The steps in flight at the stop (at most one per slot) are the only ones run twice.
    in_flight = {
        (key, block)
        async for key, block in StepRun.objects.filter(run_id=run.pk, status="cancelled")
        .exclude(item_key="")
        .values_list("item_key", "block_id")
    }
    assert ("loop[12]", "person") in in_flight and len(in_flight) <= CAP

    await execute_run(run.pk)
    resumed = await Run.objects.aget(pk=run.pk)
    assert resumed.status == "succeeded" and resumed.succeeded == ITEMS
    clearbit = calls_by_domain(simulator, "clearbit")
    linkedin = calls_by_domain(simulator, "linkedin")
    assert linkedin.pop("after.io") == 1
    for i in range(ITEMS):
        key = f"loop[{i}]"
        # d12.io restarts from its first unfinished step: its Clearbit call is not repeated.
        assert clearbit[f"d{i}.io"] == 1 + ((key, "company") in in_flight), key
        assert linkedin[f"d{i}.io"] == 1 + ((key, "person") in in_flight), key
    await sync_to_async(connections.close_all)()


async def test_a_recorded_item_failure_stands_on_resume(
    owner: Any, simulator: RunningSimulator
) -> None:
    simulator.control.configure(
        failures=[{"endpoint": "clearbit", "match": {"domain": "d3.io"}, "status": 404}],
        hold=[{"endpoint": "linkedin", "match": {"domain": "d20.io"}}],
    )
    run = await sync_to_async(lookups)(owner)
    task = asyncio.create_task(execute_run(run.pk))

    async def held() -> bool:
        return bool(simulator.control.stats()["held"].get("linkedin"))

    await wait_for(held)
    interrupt_engines()
    simulator.control.configure(failures=[], hold=[])
    simulator.control.release()
    await asyncio.wait_for(task, timeout=20)
    assert (await Run.objects.aget(pk=run.pk)).finished_at is None
    await execute_run(run.pk)
    resumed = await Run.objects.aget(pk=run.pk)
    assert resumed.status == "partially_succeeded" and resumed.failed == 1
    failed = await ItemRun.objects.aget(run_id=run.pk, status="failed")
    assert failed.index == 3 and "404" in failed.error and failed.failed_block == "company"
    assert calls_by_domain(simulator, "clearbit")["d3.io"] == 1  # not tried again
    await sync_to_async(connections.close_all)()


async def test_a_resume_goes_on_from_the_loops_state_and_spends_no_retry_pass_twice(
    owner: Any, simulator: RunningSimulator
) -> None:
    """The loop's state (LoopState: its finished retry passes) is kept with the run and read
    back: stopped after the loop, during the step after it, the resume does not retry the
    failed item a second time."""
    simulator.control.configure(
        failures=[{"endpoint": "clearbit", "match": {"domain": "d3.io"}, "status": 404}],
        hold=[{"endpoint": "linkedin", "match": {"domain": "after.io"}}],
    )
    run = await sync_to_async(lookups)(owner, 10, retry_failed=1)
    task = asyncio.create_task(execute_run(run.pk))

    async def after_held_and_state_kept() -> bool:
        if not simulator.control.stats()["held"].get("linkedin"):
            return False
        loops = (await Run.objects.aget(pk=run.pk)).loops
        return (loops.get("loop") or {}).get("state") == {"limit": None, "passes": 1}

    await wait_for(after_held_and_state_kept)
    assert calls_by_domain(simulator, "clearbit")["d3.io"] == 2  # the first go and one pass
    await stop_past_the_drain_time(task, simulator)  # the held step is cancelled
    simulator.control.configure(failures=[], hold=[])

    await execute_run(run.pk)
    resumed = await Run.objects.aget(pk=run.pk)
    assert resumed.status == "partially_succeeded" and resumed.resumes == 1
    assert resumed.failed == 1
    failed = await ItemRun.objects.aget(run_id=run.pk, status="failed")
    assert failed.index == 3 and "404" in failed.error
    assert calls_by_domain(simulator, "clearbit")["d3.io"] == 2  # its one pass was spent
    assert resumed.loops["loop"]["state"] == {"limit": None, "passes": 1}
    await sync_to_async(connections.close_all)()


async def test_a_live_lease_keeps_a_second_execution_out(
    owner: Any, simulator: RunningSimulator
) -> None:
    simulator.control.configure(hold=[{"endpoint": "clearbit"}])
    run = await sync_to_async(lookups)(owner, 4)
    first = asyncio.create_task(execute_run(run.pk))

    async def running() -> bool:
        return bool(simulator.control.stats()["held"].get("clearbit"))

    await wait_for(running)
    await execute_run(run.pk)  # returns at once: the run is held
    assert run.pk not in await sync_to_async(leases.resumable)()
    simulator.control.release()
    simulator.control.configure(hold=[])
    await asyncio.wait_for(first, timeout=20)
    done = await Run.objects.aget(pk=run.pk)
    assert done.status == "succeeded" and done.resumes == 0 and done.lease_owner == ""
    assert sum(calls_by_domain(simulator, "clearbit").values()) == 4
    await sync_to_async(connections.close_all)()


def test_runs_whose_lease_ran_out_or_whose_process_died_are_resumable(owner: Any) -> None:
    expired = lookups(owner, 1)
    dead = lookups(owner, 1)
    live = lookups(owner, 1)
    fresh = lookups(owner, 1)  # just created: its process will claim it
    now = timezone.now()
    Run.objects.filter(pk=expired.pk).update(
        status="running", lease_owner="elsewhere:1:a", lease_expires=now - dt.timedelta(seconds=1)
    )
    # A process of this host that no longer exists (pid far past any real one).
    Run.objects.filter(pk=dead.pk).update(
        status="running",
        lease_owner=f"{leases.HOST}:4194999:b",
        lease_expires=now + dt.timedelta(minutes=5),
    )
    Run.objects.filter(pk=live.pk).update(
        status="running", lease_owner="elsewhere:1:c", lease_expires=now + dt.timedelta(minutes=5)
    )
    found = set(leases.resumable())
    assert expired.pk in found and dead.pk in found
    assert live.pk not in found and fresh.pk not in found
    assert leases.claim(dead.pk, "me:1:x") and not leases.claim(live.pk, "me:1:x")
    assert not leases.claim(dead.pk, "other:1:y")  # now held by me


def test_a_queued_run_whose_job_waits_for_a_worker_is_not_resumed(
    owner: Any, settings: Any
) -> None:
    """With workers, a run queued behind a busy worker waits its turn: a look-out taking it
    after a lease would run it past every worker's --concurrency. Once its job is gone (the
    worker that took it stopped), it is interrupted like any other."""
    from django.db import connection

    from engine.jobs import run_job

    settings.KLYNTOS_EXECUTOR = "workers"
    waiting, orphan = lookups(owner, 1), lookups(owner, 1)  # queued, never claimed
    Run.objects.filter(pk__in=[waiting.pk, orphan.pk]).update(
        created_at=timezone.now() - dt.timedelta(seconds=leases.lease_seconds() + 1)
    )
    job_id = run_job.defer(run_id=str(waiting.pk))
    found = set(leases.resumable())
    assert orphan.pk in found and waiting.pk not in found
    with connection.cursor() as cursor:  # a worker took the job: still not the look-out's
        cursor.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", [job_id])
    assert waiting.pk not in set(leases.resumable())
    with connection.cursor() as cursor:  # its worker went away with the job finished
        cursor.execute("DELETE FROM procrastinate_jobs WHERE id = %s", [job_id])
    assert waiting.pk in set(leases.resumable())
    settings.KLYNTOS_EXECUTOR = "inline"  # the same rows without workers: both resumable
    assert {waiting.pk, orphan.pk} <= set(leases.resumable())


def test_a_free_run_is_claimed_in_one_statement_and_again_by_the_same_owner(owner: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fresh = lookups(owner, 1)
    with CaptureQueriesContext(connection) as queries:
        assert leases.claim(fresh.pk, "me:1:x")
    assert len(queries) == 1  # the holder is only looked at when the run is not free
    # A retried claim whose answer was lost takes it again; anyone else is kept out.
    assert leases.claim(fresh.pk, "me:1:x") and not leases.claim(fresh.pk, "other:1:y")


def test_a_step_whose_output_had_a_secret_masked_is_run_again(owner: Any) -> None:
    from engine.core.events import EventBus
    from engine.core.redaction import Redactor

    seen: list[Any] = []
    bus = EventBus(seen.append, Redactor(["clearbit-secret-value"]))
    bus.emit("step.finished", item="", block="a", name="a", output={"k": "clearbit-secret-value"})
    bus.emit("step.finished", item="", block="b", name="b", output={"k": "plain"})
    assert seen[0].data["redacted"] is True and seen[0].data["output"] == {"k": "[redacted]"}
    assert "redacted" not in seen[1].data
