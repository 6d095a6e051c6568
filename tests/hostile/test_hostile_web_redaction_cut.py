"""Redaction before truncation (issue 7, finding 6).

An upstream that echoes the caller's key so that the key straddles the point where the
step error is cut: none of the key's characters may reach the events (what the websocket
sends), the rows, the run error or the API — only the mask.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from django.db import connections
from rest_framework.test import APIClient

from engine.blocks import REGISTRY
from engine.blocks.agent import ERROR_EXCERPT as AGENT_CUT
from engine.blocks.http import ERROR_EXCERPT as HTTP_CUT
from engine.core.events import Event, EventBus
from engine.core.executor import Executor, RunOptions
from engine.core.graph import parse_graph
from engine.core.outbound import OutboundConfig, OutboundFactory
from engine.core.redaction import MASK, Redactor
from engine.core.retry import RetryPolicy
from engine.core.services import Services
from tests.engine.core.graphkit import Recorder, block, graph
from tests.hostile.web_upstream import upstream

SECRET = "sk-live-QWERTYUIOPASDFGHJKLZXC"  # 29 characters


def leaked_parts(text: str, secret: str = SECRET) -> list[str]:
    """Every piece (4+ characters) of the secret's head or tail found in `text`."""
    pieces = {secret[:n] for n in range(4, len(secret) + 1)}
    pieces |= {secret[-n:] for n in range(4, len(secret) + 1)}
    return sorted(p for p in pieces if p in text)


def echo_near(cut: int, header: str = "x-api-key") -> Any:
    """A 400 whose body quotes the request's key so that it straddles position `cut`."""

    async def handler(request: web.Request) -> web.Response:
        key = request.headers.get(header, "")
        pad = "x" * (cut - 10)
        return web.Response(status=400, text=f"{pad}{key} is not a valid key for this account")

    return handler


def test_excerpt_masks_a_secret_straddling_the_cut() -> None:
    redactor = Redactor([SECRET])
    for start in range(0, 60):
        text = "y" * start + SECRET + " tail"
        excerpt = redactor.excerpt(text, 40)
        assert len(excerpt) <= 40 and not leaked_parts(excerpt), (start, excerpt)
    assert redactor.excerpt("short", 40) == "short"
    assert redactor.excerpt("a" * 30 + SECRET, 40) == "a" * 30 + MASK


async def run_blocks(blocks: list[dict[str, Any]], services: Services) -> Recorder:
    rec = Recorder()
    env = {"K": SECRET}
    executor = Executor(
        parse_graph(graph([block("webhook", "webhook"), *blocks], [("webhook", blocks[0]["id"])])),
        REGISTRY,
        bus=EventBus(rec, Redactor(env.values())),
        services=services,
        env=env,
        options=RunOptions(retry=RetryPolicy(max_attempts=1)),
    )
    try:
        await executor.run({})
    finally:
        await services.aclose()
    return rec


async def test_http_error_excerpt_leaks_no_part_of_an_echoed_key() -> None:
    async with upstream({"/check": echo_near(HTTP_CUT)}) as server:
        factory = OutboundFactory(OutboundConfig(host_overrides={"api.vendor.example": server.url}))
        rec = await run_blocks(
            [
                block(
                    "call",
                    "http",
                    url="https://api.vendor.example/check",
                    headers={"X-Api-Key": "<env.K>"},
                )
            ],
            Services(outbound=factory),
        )
    error = rec.of("step.failed")[0].data["error"]
    assert "returned 400" in error and MASK in error
    assert not leaked_parts(json.dumps([e.as_dict() for e in rec.events])), error


async def test_agent_error_excerpt_leaks_no_part_of_an_echoed_key() -> None:
    async def refuse(request: web.Request) -> web.Response:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        message = "k" * (AGENT_CUT - 12) + key + " is not a valid key"
        return web.json_response({"error": {"message": message}}, status=401)

    async with upstream({"/v1/chat/completions": refuse}) as server:
        factory = OutboundFactory(OutboundConfig(trusted_hosts=frozenset({"127.0.0.1"})))
        rec = await run_blocks(
            [block("ask", "agent", user_prompt="hi", api_key="<env.K>")],
            Services(outbound=factory, openai_base_url=f"{server.url}/v1"),
        )
    error = rec.of("step.failed")[0].data["error"]
    assert "returned 401" in error and MASK in error
    assert not leaked_parts(json.dumps([e.as_dict() for e in rec.events])), error


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_rows_events_and_api_show_no_part_of_an_echoed_key(
    django_user_model: Any, settings: Any
) -> None:
    from builder.services import run_create, secret_set, workflow_create
    from engine.models import ItemRun, Run, StepRun
    from engine.runner import execute_run

    def make_run(vendor: str) -> tuple[Any, Any]:
        owner = django_user_model.objects.create_user("echoed", password="pw-echoed-123")
        secret_set(owner=owner, name="VENDOR_KEY", value=SECRET)
        settings.KLYNTOS_HOST_OVERRIDES = f"api.vendor.example={vendor}"
        blocks = [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "loop",
                "type": "loop",
                "name": "loop",
                "config": {"items": "<webhook.body.items>", "max_concurrent": 2},
            },
            {
                "id": "call",
                "type": "http",
                "name": "call",
                "parent": "loop",
                "config": {
                    "url": "https://api.vendor.example/check?n=<item.n>",
                    "headers": {"X-Api-Key": "<env.VENDOR_KEY>"},
                },
            },
        ]
        graph_json = {"blocks": blocks, "edges": [{"source": "webhook", "target": "loop"}]}
        workflow = workflow_create(owner=owner, name="echo", graph=graph_json)
        run, _ = run_create(workflow=workflow, input={"items": [{"n": 1}, {"n": 2}]})
        connections.close_all()  # this helper thread's connection: the test drops the db
        return owner, run

    frames: list[Event] = []
    async with upstream({"/check": echo_near(HTTP_CUT)}) as server:
        owner, run = await sync_to_async(make_run)(server.url)
        await asyncio.wait_for(execute_run(run.pk, on_event=frames.append), 30)

    def stored() -> str:
        rows: list[Any] = [Run.objects.filter(pk=run.pk).values().get()]
        rows += list(ItemRun.objects.filter(run_id=run.pk).values())
        rows += list(StepRun.objects.filter(run_id=run.pk).values())
        client = APIClient()
        client.force_authenticate(owner)
        api = [client.get(f"/api/runs/{run.pk}/").content.decode()]
        api.append(client.get(f"/api/runs/{run.pk}/items/").content.decode())
        connections.close_all()
        return json.dumps(rows, default=str) + "".join(api)

    text = await sync_to_async(stored)()
    assert "returned 400" in text and MASK in text
    assert not leaked_parts(text)
    sent = json.dumps([e.as_dict() for e in frames])
    assert MASK in sent and not leaked_parts(sent)
