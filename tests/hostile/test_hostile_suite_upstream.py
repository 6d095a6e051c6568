"""Hostile upstreams and floods: an upstream that never answers (or trickles), a storm of
5xx, a 1 MB LLM answer, and 10,000 events a second into the run store. Each time the run
ends, with the right counts, through the real executor, store and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections
from rest_framework.test import APIClient

from builder import services
from engine.blocks.http import MAX_RESPONSE_BYTES
from engine.core.events import EventBus
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run
from engine.store import RunStore
from tests.hostile.conftest import Upstream, serve

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def loop_graph(url: str, **http: Any) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {
                "id": "each",
                "type": "loop",
                "name": "each",
                "config": {"items": "<hook.body.leads>", "variable": "lead", "max_concurrent": 5},
            },
            {
                "id": "call",
                "type": "http",
                "name": "call",
                "parent": "each",
                "config": {"url": url + "/lead/<lead.id>", **http},
            },
        ],
        "edges": [{"source": "hook", "target": "each"}],
    }


def run_now(user: Any, graph: dict[str, Any], body: Any) -> tuple[Run, float]:
    workflow = services.workflow_create(owner=user, name="upstream", graph=graph)
    run, _ = services.run_create(workflow=workflow, input=body)
    started = time.monotonic()
    async_to_sync(execute_run)(run.pk)
    run.refresh_from_db()
    return run, time.monotonic() - started


def trusted(settings: Any, server: Upstream) -> Upstream:
    settings.KLYNTOS_TRUSTED_HOSTS = [server.hostport]
    return server


# --- a hanging upstream ----------------------------------------------------------------------


@pytest.fixture
def hanging(settings: Any) -> Iterator[Upstream]:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3600)
        return web.Response()

    for server in serve(handler):
        yield trusted(settings, server)


@pytest.fixture
def trickling(settings: Any) -> Iterator[Upstream]:
    """Sends its headers, then one byte every 100 ms, forever: no read ever times out."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        while True:
            await response.write(b" ")
            await asyncio.sleep(0.1)

    for server in serve(handler):
        yield trusted(settings, server)


@pytest.mark.parametrize("where", ["block", "setting"])
def test_a_hanging_upstream_ends_the_step_at_the_block_timeout(
    user: Any, hanging: Upstream, settings: Any, where: str
) -> None:
    if where == "block":
        graph = loop_graph(hanging.base_url, timeout=0.5)
    else:
        settings.KLYNTOS_BLOCK_TIMEOUT = 0.5
        graph = loop_graph(hanging.base_url)
    run, elapsed = run_now(user, graph, {"leads": [{"id": "a"}]})
    assert run.status == "failed"
    step = StepRun.objects.get(run=run, block_id="call")
    assert step.status == "failed" and step.attempts == 3
    assert step.error == "timed out after 0.5 s (gave up after 3 attempts)"
    assert len(hanging.requests) == 3
    assert elapsed < 30  # 3 × 0.5 s plus backoff; only a run that never ends fails this


def test_a_trickling_upstream_ends_at_the_block_timeout(user: Any, trickling: Upstream) -> None:
    run, _ = run_now(user, loop_graph(trickling.base_url, timeout=0.5), {"leads": [{"id": "a"}]})
    assert run.status == "failed"
    step = StepRun.objects.get(run=run, block_id="call")
    assert step.error == "timed out after 0.5 s (gave up after 3 attempts)"


@pytest.fixture
def endless(settings: Any) -> Iterator[Upstream]:
    """A chunked answer (no Content-Length) that never ends, as fast as it can."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * 65536
        while True:
            await response.write(chunk)

    for server in serve(handler):
        yield trusted(settings, server)


def test_an_endless_answer_is_cut_at_the_response_limit(user: Any, endless: Upstream) -> None:
    """Memory stays bounded: the HTTP block stops reading at its limit and fails the step."""
    run, _ = run_now(user, loop_graph(endless.base_url, timeout=30), {"leads": [{"id": "a"}]})
    assert run.status == "failed"
    step = StepRun.objects.get(run=run, block_id="call")
    assert step.error == f"response larger than {MAX_RESPONSE_BYTES} bytes"
    assert len(endless.requests) == 1  # too large is not transient: no retry


# --- a 5xx storm -----------------------------------------------------------------------------


@pytest.fixture
def storm(settings: Any) -> Iterator[Upstream]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "overloaded"}, status=503)

    for server in serve(handler):
        yield trusted(settings, server)


def test_a_5xx_storm_is_retried_a_bounded_number_of_times_and_the_run_ends(
    user: Any, storm: Upstream, settings: Any
) -> None:
    """The provider breaker opens on the storm and the items wait for it (an attempt after
    which it is open is not counted), but at most as many attempts again: the run still ends,
    every item failed on its own attempts. Cool-downs scaled down from 5 s to 0.05 s."""
    settings.KLYNTOS_BREAKER = "cool_down:0.05;cool_down_max:0.2"
    leads = [{"id": str(i)} for i in range(20)]
    run, _ = run_now(user, loop_graph(storm.base_url), {"leads": leads})
    assert run.status == "failed"
    assert (run.total, run.succeeded, run.failed, run.running) == (20, 0, 20, 0)
    # Three attempts per item, and at most three more the breaker's pauses did not count.
    assert 20 * 3 <= len(storm.requests) <= 20 * 3 * 2
    steps = StepRun.objects.filter(run=run, block_id="call")
    assert steps.count() == 20
    assert all(3 <= s.attempts <= 6 for s in steps)
    for step in steps:
        lead = int(step.item_key.removeprefix("each[").removesuffix("]"))
        assert step.error == (
            f"GET {storm.base_url}/lead/{lead} returned 503 "
            f"(gave up after {step.attempts} attempts)"
        )
    assert ItemRun.objects.filter(run=run, status="failed").count() == 20
    # The run was paused by the breaker meanwhile, and said so.
    [breaker] = [p["breaker"] for p in run.providers.values() if "breaker" in p]
    assert breaker["state"] in ("open", "half_open")


# --- a 1 MB LLM answer -----------------------------------------------------------------------

MEGABYTE = 1024 * 1024


@pytest.fixture
def verbose_llm(settings: Any) -> Iterator[Upstream]:
    """An OpenAI-compatible endpoint whose answer is 1 MB of text."""
    content = ("All work and no play. " * (MEGABYTE // 22 + 1))[:MEGABYTE]

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "id": "chatcmpl-big",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 250000, "total_tokens": 250005},
            }
        )

    for server in serve(handler):
        settings.OPENAI_BASE_URL = f"{server.base_url}/v1"
        settings.OPENAI_API_KEY = "sk-test"
        yield server


def test_a_1mb_llm_answer_is_stored_whole_and_served(
    user: Any, verbose_llm: Upstream, api: APIClient
) -> None:
    graph = {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {"id": "ask", "type": "agent", "name": "ask", "config": {"user_prompt": "Talk."}},
        ],
        "edges": [{"source": "hook", "target": "ask"}],
    }
    run, _ = run_now(user, graph, {})
    assert run.status == "succeeded", run.error
    step = StepRun.objects.get(run=run, block_id="ask")
    assert len(step.output["content"]) == MEGABYTE
    assert step.output["usage"]["completion_tokens"] == 250000
    assert len(run.outputs["ask"]["content"]) == MEGABYTE
    served = api.get(f"/api/runs/{run.pk}/")
    assert served.status_code == 200
    assert len(served.json()["outputs"]["ask"]["content"]) == MEGABYTE


def test_an_llm_answer_past_the_output_limit_fails_its_step_naming_the_setting(
    user: Any, verbose_llm: Upstream, settings: Any
) -> None:
    """The same 1 MB answer under a 512 KiB KLYNTOS_MAX_OUTPUT_BYTES: bounded, with a clear
    error, and never stored."""
    settings.KLYNTOS_MAX_OUTPUT_BYTES = 512 * 1024
    graph = {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {"id": "ask", "type": "agent", "name": "ask", "config": {"user_prompt": "Talk."}},
        ],
        "edges": [{"source": "hook", "target": "ask"}],
    }
    run, _ = run_now(user, graph, {})
    assert run.status == "failed"
    step = StepRun.objects.get(run=run, block_id="ask")
    assert step.error == (
        f"the block's output is larger than {512 * 1024} bytes (KLYNTOS_MAX_OUTPUT_BYTES)"
    )
    assert step.output is None or len(str(step.output)) < 512 * 1024
    assert len(verbose_llm.requests) == 1  # a size error is not retried


# --- 10,000 events a second into the store ---------------------------------------------------

ITEMS = 2500  # four events each: 10,000 events, emitted over one second


async def flood(run_id: Any) -> tuple[float, float]:
    """Emit a loop's events at 10,000 a second for one second; returns (emitting, closing)
    durations in seconds."""
    store = RunStore(run_id)
    bus = EventBus(store.sink)
    store.start()
    started = time.monotonic()
    bus.emit("run.started", total_blocks=2)
    per_tick, tick = 100, 0.01  # 100 events every 10 ms
    emitted = 0
    for index in range(ITEMS):
        key = f"loop[{index}]"
        bus.emit("item.started", item=key, loop="loop", parent="", index=index, data={"v": index})
        bus.emit("step.started", item=key, block="square", name="square")
        bus.emit(
            "step.finished",
            item=key,
            block="square",
            name="square",
            output={"result": index},
            attempts=1,
            usage=[],
            duration=0.001,
        )
        bus.emit("item.finished", item=key, loop="loop", index=index, duration=0.001)
        emitted += 4
        if emitted % per_tick == 0:
            bus.emit(
                "progress",
                loop="loop",
                item="",
                total=ITEMS,
                succeeded=index + 1,
                failed=0,
                running=0,
            )
            target = started + (emitted // per_tick) * tick
            await asyncio.sleep(max(0.0, target - time.monotonic()))
    bus.emit("run.finished", status="succeeded", error=None)
    emitting = time.monotonic() - started
    await store.close({"outputs": {"loop": {"count": ITEMS}}})
    await sync_to_async(connections.close_all)()
    return emitting, time.monotonic() - started - emitting


async def test_10000_events_a_second_are_stored_and_the_run_ends_with_right_counters(
    user: Any,
) -> None:
    from tests.engine.graphs import burst_graph

    def make() -> Run:
        workflow = services.workflow_create(owner=user, name="flood", graph=burst_graph())
        return services.run_create(workflow=workflow, input={"items": []})[0]

    run = await sync_to_async(make)()
    emitting, closing = await flood(run.pk)
    assert emitting < 3.0, f"the store's sink slowed the engine down ({emitting:.2f} s)"
    run = await Run.objects.aget(pk=run.pk)
    assert run.status == "succeeded" and run.finished_at is not None
    assert (run.total, run.succeeded, run.failed, run.running) == (ITEMS, ITEMS, 0, 0)
    assert await ItemRun.objects.filter(run=run, status="succeeded").acount() == ITEMS
    assert await StepRun.objects.filter(run=run, status="succeeded").acount() == ITEMS
    last = await StepRun.objects.aget(run=run, item_key=f"loop[{ITEMS - 1}]")
    assert last.output == {"result": ITEMS - 1}
    # The store kept up: what was left to write at the end was the last moments' batch,
    # not a backlog of the whole second.
    assert closing < 5.0, f"closing took {closing:.2f} s after 1 s of events"
    await sync_to_async(connections.close_all)()
