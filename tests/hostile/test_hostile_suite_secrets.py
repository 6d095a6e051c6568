"""Secrets echoed back by upstreams: an API that answers "invalid key sk-…" (as OpenAI
does) or reflects the Authorization header in its error body. The key must be masked in
every place the text goes: engine events, websocket frames, the rows and the REST API, the
admin, the logs, and the workflow tables' admin lists and CSV exports (a key a workflow
wrote into one of its own rows).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from builder import services
from engine.core.events import Event
from engine.log_redaction import RedactSecretsFilter
from engine.models import ItemRun, Run, StepRun
from engine.runner import execute_run
from klyntos.asgi import application
from tests.hostile.conftest import Upstream, serve

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

CRM_KEY = "crm-live-7Hq2Lx9VbN4cT8wR1mZ5"
LLM_KEY = "sk-proj-Qw3eRt5yUi7oP9aS2dF4gH6j"
SECRETS = (CRM_KEY, LLM_KEY)


@pytest.fixture
def echoing_upstream(settings: Any) -> Iterator[Upstream]:
    """Answers 401 quoting the credential it was sent, like many real APIs do (except for
    lead "ok", so the loop partly succeeds and the agent after it runs too)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        if request.path.endswith("/chat/completions"):  # the OpenAI error shape
            message = f"Incorrect API key provided: {key}. You can find your API key at ..."
            return web.json_response(
                {"error": {"message": message, "type": "invalid_request_error"}}, status=401
            )
        if request.path.endswith("/crm/ok"):
            return web.json_response({"found": True})
        return web.json_response({"error": f"invalid key {key}", "header": auth}, status=401)

    for server in serve(handler):
        settings.KLYNTOS_TRUSTED_HOSTS = [server.hostport]
        settings.OPENAI_BASE_URL = f"{server.base_url}/v1"
        settings.OPENAI_API_KEY = "sk-operator-default-key"
        yield server


def leaky_graph(base_url: str) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {
                "id": "each",
                "type": "loop",
                "name": "each",
                "config": {"items": "<hook.body.leads>", "variable": "lead"},
            },
            {
                "id": "crm",
                "type": "http",
                "name": "crm",
                "parent": "each",
                "config": {
                    "url": f"{base_url}/crm/<lead.id>",
                    "headers": {"Authorization": "Bearer <env.CRM_KEY>"},
                },
            },
            {
                "id": "ask",
                "type": "agent",
                "name": "ask",
                "config": {"user_prompt": "Hello", "api_key": "<env.LLM_KEY>"},
            },
        ],
        "edges": [{"source": "hook", "target": "each"}, {"source": "each", "target": "ask"}],
    }


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def console_log() -> Iterator[io.StringIO]:
    """What the configured console handler (settings.LOGGING) writes, captured."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    assert handlers, "the console handler with the redaction filter is not installed"
    buffer = io.StringIO()
    previous = [h.setStream(buffer) for h in handlers]  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)  # type: ignore[attr-defined]


def start(user: Any, base_url: str) -> Run:
    services.secret_set(owner=user, name="CRM_KEY", value=CRM_KEY)
    services.secret_set(owner=user, name="LLM_KEY", value=LLM_KEY)
    workflow = services.workflow_create(owner=user, name="leaky", graph=leaky_graph(base_url))
    run, _ = services.run_create(workflow=workflow, input={"leads": [{"id": "ok"}, {"id": "b"}]})
    return run


def cookie_of(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def test_an_echoed_key_is_masked_everywhere(
    user: Any, echoing_upstream: Upstream, console_log: io.StringIO
) -> None:
    run = await sync_to_async(start)(user, echoing_upstream.base_url)
    cookie = await sync_to_async(cookie_of)(user)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/runs/{run.pk}/",
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)],
    )
    assert (await communicator.connect(timeout=10))[0]
    events: list[Event] = []
    await execute_run(run.pk, on_event=events.append)
    frames: list[str] = []
    while True:
        output = await communicator.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            break
        frames.append(output["text"])
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()

    # The upstream did receive the keys (they were sent), and answered with them.
    sent = [r["headers"].get("Authorization", "") for r in echoing_upstream.requests]
    assert f"Bearer {CRM_KEY}" in sent and f"Bearer {LLM_KEY}" in sent

    # Events.
    assert events and not leaks(json.dumps([e.as_dict() for e in events], default=str))
    failures = [e.data["error"] for e in events if e.type == "step.failed"]
    assert any("invalid key [redacted]" in f for f in failures), failures
    assert any("Incorrect API key provided: [redacted]" in f for f in failures), failures
    # Websocket frames.
    assert len(frames) >= 2 and not leaks("".join(frames))
    assert "[redacted]" in frames[-1]
    # Rows.
    stored = await sync_to_async(
        lambda: repr(
            [
                list(Run.objects.filter(pk=run.pk).values()),
                list(ItemRun.objects.filter(run=run).values()),
                list(StepRun.objects.filter(run=run).values()),
            ]
        )
    )()
    assert "[redacted]" in stored and not leaks(stored)
    # Logs written while it ran.
    assert not leaks(console_log.getvalue())


def test_the_api_and_the_admin_show_no_echoed_key(
    user: Any, echoing_upstream: Upstream, django_user_model: Any
) -> None:
    run = start(user, echoing_upstream.base_url)
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    assert run.status == "failed" and "[redacted]" in run.error, run.error

    api = APIClient()
    api.force_authenticate(user)
    pages = [
        api.get(f"/api/runs/{run.pk}/"),
        api.get(f"/api/runs/{run.pk}/items/"),
        api.get(f"/api/workflows/{run.workflow_id}/runs/"),
        api.get(f"/api/workflows/{run.workflow_id}/"),
        api.get("/api/secrets/"),
    ]
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-1")
    client = Client()
    client.force_login(admin)
    step = StepRun.objects.filter(run=run, status="failed").first()
    item = ItemRun.objects.filter(run=run, status="failed").first()
    assert step is not None and item is not None
    pages += [
        client.get(url)
        for url in [
            "/admin/engine/run/",
            f"/admin/engine/run/{run.pk}/change/",
            "/admin/engine/itemrun/",
            f"/admin/engine/itemrun/{item.pk}/change/",
            "/admin/engine/steprun/",
            f"/admin/engine/steprun/{step.pk}/change/",
            "/admin/builder/secret/",
        ]
    ]
    for page in pages:
        assert page.status_code == 200
        assert not leaks(page.content.decode()), page


def test_a_log_line_quoting_an_upstream_body_is_masked(
    user: Any, echoing_upstream: Upstream, console_log: io.StringIO
) -> None:
    """Whatever code logs an upstream answer later, the configured handler masks keys the
    process has seen, in the message and in the traceback."""
    run = start(user, echoing_upstream.base_url)
    asyncio.run(execute_run(run.pk))  # the run registers its secrets with the process
    body = json.dumps({"error": f"invalid key {CRM_KEY}"})
    logger = logging.getLogger("engine.hostile")
    logger.warning("upstream answered %s", body)
    try:
        raise RuntimeError(f"upstream said {LLM_KEY}")
    except RuntimeError:
        logger.exception("call failed")
    written = console_log.getvalue()
    assert "upstream answered" in written and "call failed" in written
    assert "RuntimeError: upstream said [redacted]" in written
    assert not leaks(written)


@pytest.fixture
def reflecting_upstream(settings: Any) -> Iterator[Upstream]:
    """Answers 200 with the Authorization header it was sent, as an echo API does."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"header": request.headers.get("Authorization", "")})

    for server in serve(handler):
        settings.KLYNTOS_TRUSTED_HOSTS = [server.hostport]
        yield server


def test_a_key_written_into_a_workflow_table_is_masked_in_its_admin_list_and_export(
    user: Any, reflecting_upstream: Upstream, django_user_model: Any
) -> None:
    """The database block binds the real values (the workflow needs them); what the admin
    shows of the owner's rows, on the list and in the CSV export, is masked like run data."""
    user.is_staff = True
    user.save()
    services.secret_set(owner=user, name="CRM_KEY", value=CRM_KEY)
    services.secret_set(owner=user, name="LLM_KEY", value=LLM_KEY)
    sql = (
        "INSERT INTO enriched_leads (lead_id, name, company, title, email, budget_estimate,"
        " urgency_level, linkedin_url, enriched_at) VALUES "
        "('echo', '<crm.body.header>', 'Echo Co', '<hook.body.note>', '', '', '', '', NOW())"
    )
    graph = {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {
                "id": "crm",
                "type": "http",
                "name": "crm",
                "config": {
                    "url": f"{reflecting_upstream.base_url}/echo",
                    "headers": {"Authorization": "Bearer <env.CRM_KEY>"},
                },
            },
            {"id": "save", "type": "database", "name": "save", "config": {"sql": sql}},
        ],
        "edges": [{"source": "hook", "target": "crm"}, {"source": "crm", "target": "save"}],
    }
    workflow = services.workflow_create(owner=user, name="writes", graph=graph)
    run, _ = services.run_create(workflow=workflow, input={"note": f"caller says {LLM_KEY}"})
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-1")
    # The row among whatever other tests left in other owners' data: searched, and for the
    # superuser (who sees every owner) filtered to its owner.
    for viewer, query in ((user, {"q": "echo"}), (root, {"q": "echo", "owner": user.pk})):
        client = Client()
        client.force_login(viewer)
        for url in ["/admin/leads/enrichedlead/", "/admin/leads/enrichedlead/export.csv"]:
            page = client.get(url, query)
            assert page.status_code == 200, url
            text = b"".join(page.streaming_content if page.streaming else [page.content]).decode()
            assert "Echo Co" in text, (url, text[:2000])
            assert "Bearer [redacted]" in text and "caller says [redacted]" in text, url
            assert not leaks(text), (viewer, url)
