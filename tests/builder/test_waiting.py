"""Webhook and REST runs that wait for their answer (`Prefer: wait=` / `?wait=`), through the
real ASGI application (the wait lives in its ASGI layer, builder/waiting.py), real runs on the
executor thread, the real Redis channel layer, and the simulator as the upstream API."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections
from django.test import Client
from rest_framework.authtoken.models import Token

from builder import services
from builder.webhook_security import sign_payload
from engine.models import Run
from simulator import answers
from tests.builder.asgi_kit import asgi_post, post

REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
KEY = "cb-key-waiting-3c9e1f7a2b"
LOOKUP_URL = "https://api.clearbit.com/v2/companies/find?domain=<webhook.body.domain>"


def lookup_graph(response: dict[str, Any] | None) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
        {
            "id": "lookup",
            "type": "http",
            "name": "lookup",
            "config": {"url": LOOKUP_URL, "headers": {"Authorization": "Bearer <env.CB_KEY>"}},
        },
    ]
    edges = [{"source": "webhook", "target": "lookup"}]
    if response is not None:
        blocks.append({"id": "reply", "type": "response", "name": "reply", "config": response})
        edges.append({"source": "lookup", "target": "reply"})
    return {"blocks": blocks, "edges": edges}


REPLY = {
    "status": 201,
    "headers": {"X-Source": "clearbit", "Cache-Control": "no-store"},
    "body": {
        "domain": "<webhook.body.domain>",
        "company": "<lookup.body.name>",
        "employees": "<lookup.body.metrics.employees>",
        "key": "<env.CB_KEY>",
    },
    "error_status": 502,
}


@pytest.fixture
def workflow(user: Any) -> Any:
    services.secret_set(owner=user, name="CB_KEY", value=KEY)
    return services.workflow_create(owner=user, name="wait", graph=lookup_graph(REPLY))


@pytest.fixture
def plain_workflow(user: Any) -> Any:
    services.secret_set(owner=user, name="CB_KEY", value=KEY)
    return services.workflow_create(owner=user, name="plain", graph=lookup_graph(None))


def hook(workflow: Any, query: str = "") -> str:
    return f"/hooks/{workflow.webhook.token}{query}"


@REAL_RUN
def test_a_response_block_answers_exactly_its_status_headers_and_body(
    providers: Any, workflow: Any
) -> None:
    response = post(hook(workflow), {"domain": "acme.io"}, {"Prefer": "wait=30"})
    company = answers.company("acme.io")
    assert response["status"] == 201, response
    assert response["json"] == {
        "domain": "acme.io",
        "company": company["name"],
        "employees": company["metrics"]["employees"],
        "key": "[redacted]",  # a secret never leaves in an answer, masked like the API does
    }
    assert KEY not in response["body"].decode()
    assert response["headers"]["x-source"] == "clearbit"
    assert response["headers"]["cache-control"] == "no-store"
    assert response["headers"]["content-type"] == "application/json"
    run = Run.objects.get(pk=response["headers"]["x-klyntos-run-id"])
    assert run.status == "succeeded"


@REAL_RUN
def test_a_failing_upstream_answers_the_error_status_with_the_blocks_error(
    providers: Any, workflow: Any
) -> None:
    providers.control.configure(failures=[{"endpoint": "clearbit", "status": 404}])
    response = post(hook(workflow, "?wait=30"), {"domain": "acme.io"})
    assert response["status"] == 502, response
    body = response["json"]
    assert body["block"] == "lookup"
    assert body["status"] == "failed"
    assert "returned 404" in body["error"]
    assert "Simulated error (HTTP 404)" in body["error"]
    assert Run.objects.get(pk=body["run_id"]).status == "failed"


@REAL_RUN
def test_a_short_wait_on_a_slow_run_answers_202_and_the_run_still_completes(
    providers: Any, workflow: Any, finish_run: Any
) -> None:
    # The call is held until the answer came, so a loaded machine that answers the wait
    # late still finds the run going (a 5 s latency was not enough: a 201 came after it).
    providers.control.configure(hold=[{"endpoint": "clearbit"}])
    try:
        response = post(hook(workflow), {"domain": "slow.io"}, {"Prefer": "wait=0.1"})
        assert response["status"] == 202, response
        run_id = response["json"]["run_id"]
        assert Run.objects.get(pk=run_id).status in {"queued", "running"}
    finally:
        providers.control.release()
    assert finish_run(run_id).status == "succeeded"


@REAL_RUN
def test_without_a_response_block_the_answer_is_the_last_blocks_output(
    providers: Any, plain_workflow: Any
) -> None:
    response = post(
        hook(plain_workflow), {"domain": "plain.io"}, {"Prefer": "respond-async, wait=10"}
    )
    assert response["status"] == 200, response
    assert response["json"]["status"] == 200
    assert response["json"]["body"] == answers.company("plain.io")


@REAL_RUN
def test_an_idempotent_replay_waits_on_the_same_run(providers: Any, workflow: Any) -> None:
    providers.control.configure(hold=[{"endpoint": "clearbit"}])
    headers = {"Prefer": "wait=30", "Idempotency-Key": "order-77"}

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        first = asyncio.ensure_future(asgi_post(hook(workflow), {"domain": "once.io"}, headers))
        await sync_to_async(providers.control.wait_for)(
            lambda stats: stats["in_flight"].get("clearbit", 0) == 1
        )
        second = asyncio.ensure_future(asgi_post(hook(workflow), {"domain": "once.io"}, headers))
        await asyncio.sleep(0.3)  # the replay is waiting too, on the same run
        assert not first.done() and not second.done()
        await sync_to_async(providers.control.release)()
        try:
            return await first, await second
        finally:
            await sync_to_async(connections.close_all)()

    first, second = async_to_sync(scenario)()
    assert first["status"] == second["status"] == 201, (first, second)
    assert first["json"] == second["json"]
    assert first["headers"]["x-klyntos-run-id"] == second["headers"]["x-klyntos-run-id"]
    assert second["headers"]["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first["headers"]
    assert Run.objects.count() == 1
    assert providers.control.stats()["requests"]["clearbit"] == 1
    # Once the run has ended, a replay gets its answer at once.
    third = post(hook(workflow), {"domain": "once.io"}, headers)
    assert (third["status"], third["json"]) == (201, first["json"])


def request_threads() -> int:
    """Threads that run requests' sync code: Django gives each request a thread of its own
    (asgiref's ThreadSensitiveContext). Not the runs' store threads (`run-store-…`), nor
    the event loop's shared pool (`asyncio_…`) that brief database reads borrow."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith(("run-store", "asyncio_")))


@REAL_RUN
def test_waiting_requests_hold_no_thread(providers: Any, workflow: Any) -> None:
    """Twelve requests wait at once while their runs are held upstream, and no thread is
    kept for any of them (a wait inside a Django view would keep its request's thread)."""
    providers.control.configure(hold=[{"endpoint": "clearbit"}])
    count = 12
    threads: list[int] = []

    async def scenario() -> list[dict[str, Any]]:
        before = request_threads()
        calls = [
            asyncio.ensure_future(
                asgi_post(hook(workflow), {"domain": f"d{i}.io"}, {"Prefer": "wait=30"})
            )
            for i in range(count)
        ]
        await sync_to_async(providers.control.wait_for)(
            lambda stats: stats["in_flight"].get("clearbit", 0) == count, 15
        )
        await asyncio.sleep(0.5)  # every view has returned; every request is waiting
        assert not any(call.done() for call in calls)
        threads.append(request_threads() - before)
        await sync_to_async(providers.control.release)()
        try:
            return list(await asyncio.gather(*calls))
        finally:
            await sync_to_async(connections.close_all)()

    responses = async_to_sync(scenario)()
    assert threads[0] <= 1, f"{threads[0]} more request threads while {count} requests waited"
    assert [r["status"] for r in responses] == [201] * count
    assert {r["json"]["domain"] for r in responses} == {f"d{i}.io" for i in range(count)}


@REAL_RUN
def test_a_rest_run_waits_for_its_answer_too(providers: Any, workflow: Any, user: Any) -> None:
    token = Token.objects.create(user=user).key
    path = f"/api/workflows/{workflow.pk}/runs/?wait=30"
    response = post(path, {"input": {"domain": "rest.io"}}, {"Authorization": f"Token {token}"})
    assert response["status"] == 201, response
    assert response["json"]["domain"] == "rest.io"
    assert response["json"]["key"] == "[redacted]"
    # Without a wait: the usual 201 with the run.
    usual = post(
        path.split("?")[0], {"input": {"domain": "rest.io"}}, {"Authorization": f"Token {token}"}
    )
    assert usual["status"] == 201
    assert set(usual["json"]) >= {"id", "status"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "prefer", "fragment"),
    [
        ("?wait=abc", None, "wait must be a number of seconds"),
        ("?wait=-1", None, "wait must be a number of seconds"),
        ("?wait=1e3", None, "wait must be a number of seconds"),
        ("?wait=nan", None, "wait must be a number of seconds"),
        ("?wait=", None, "wait must be a number of seconds"),
        ("?wait=31", None, "wait is at most 30 seconds (KLYNTOS_MAX_WAIT_SECONDS)"),
        ("", "wait=soon", "wait must be a number of seconds"),
        ("", "respond-async, wait", "wait must be a number of seconds"),
        ("", "wait=3600", "KLYNTOS_MAX_WAIT_SECONDS"),
    ],
)
def test_a_malformed_or_too_long_wait_is_400_and_starts_nothing(
    client: Client, api: Any, workflow: Any, query: str, prefer: str | None, fragment: str
) -> None:
    headers = {"Prefer": prefer} if prefer else {}
    response = client.post(
        hook(workflow, query),
        data=b'{"domain": "x.io"}',
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    rest = api.post(
        f"/api/workflows/{workflow.pk}/runs/{query}", {"input": {}}, format="json", headers=headers
    )
    assert rest.status_code == 400
    assert fragment in rest.json()["error"]
    assert Run.objects.count() == 0


@REAL_RUN
def test_a_signed_call_waits_and_its_verbatim_replay_gets_the_same_answer(
    providers: Any, workflow: Any
) -> None:
    secret = services.webhook_rotate_secret(webhook=workflow.webhook)
    body = {"domain": "signed.io"}
    raw = json.dumps(body).encode()  # what asgi_post sends
    signed = {"X-Klyntos-Signature": sign_payload(secret, raw, int(time.time()))}
    first = post(hook(workflow), body, {**signed, "Prefer": "wait=30"})
    assert first["status"] == 201, first
    assert first["json"]["domain"] == "signed.io"
    replay = post(hook(workflow), body, {**signed, "Prefer": "wait=30"})
    assert (replay["status"], replay["json"]) == (201, first["json"])
    assert replay["headers"]["idempotent-replayed"] == "true"
    assert Run.objects.count() == 1
    unsigned = post(hook(workflow), body, {"Prefer": "wait=30"})
    assert unsigned["status"] == 401  # refused before any wait, as before
