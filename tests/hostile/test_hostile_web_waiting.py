"""Hostile callers and upstreams against waiting calls (`Prefer: wait=`), through the real
ASGI application: what a run answers must never carry a secret, a header the caller chose,
or markup a browser would run — whatever the webhook body or the upstream says."""

from __future__ import annotations

from typing import Any

import pytest

from builder import services
from tests.builder.asgi_kit import post

REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
KEY = "sk-live-hostile-9f2c4e6a8b0d"
LOOKUP = "https://api.clearbit.com/v2/companies/find?domain=<webhook.body.domain>"


def workflow_with(user: Any, reply: dict[str, Any]) -> Any:
    services.secret_set(owner=user, name="CB_KEY", value=KEY)
    graph = {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {
                "id": "lookup",
                "type": "http",
                "name": "lookup",
                "config": {"url": LOOKUP, "headers": {"Authorization": "Bearer <env.CB_KEY>"}},
            },
            {"id": "reply", "type": "response", "name": "reply", "config": reply},
        ],
        "edges": [
            {"source": "webhook", "target": "lookup"},
            {"source": "lookup", "target": "reply"},
        ],
    }
    return services.workflow_create(owner=user, name="hostile wait", graph=graph)


def hook(workflow: Any) -> str:
    return f"/hooks/{workflow.webhook.token}"


@REAL_RUN
def test_an_upstream_echoing_the_key_in_its_error_leaves_it_masked_in_the_answer(
    providers: Any, user: Any
) -> None:
    providers.control.configure(
        failures=[{"endpoint": "clearbit", "status": 403, "body": f"bad key {KEY} for you"}]
    )
    workflow = workflow_with(user, {"body": "<lookup.body>", "error_status": 502})
    answer = post(hook(workflow), {"domain": "x.io"}, {"Prefer": "wait=10"})
    assert answer["status"] == 502, answer
    assert KEY not in answer["body"].decode()
    assert "[redacted]" in answer["json"]["error"]


@REAL_RUN
def test_a_body_reflecting_the_key_through_references_is_masked(providers: Any, user: Any) -> None:
    workflow = workflow_with(
        user,
        {
            "headers": {"X-Echo": "<env.CB_KEY>"},
            "body": {"key": "<env.CB_KEY>", "said": "key=<env.CB_KEY>", "in": "<webhook.body>"},
        },
    )
    # The caller even sends the key back in: a secret's value is masked wherever it shows.
    answer = post(hook(workflow), {"domain": "x.io", "note": KEY}, {"Prefer": "wait=10"})
    assert answer["status"] == 200, answer
    raw = answer["body"].decode() + repr(answer["headers"])
    assert KEY not in raw
    assert answer["json"]["key"] == "[redacted]"
    assert answer["headers"]["x-echo"] == "[redacted]"


@REAL_RUN
@pytest.mark.parametrize(
    ("header", "sent"),
    [
        ("X-Echo", "ok\r\nSet-Cookie: session=stolen"),
        ("X-Echo", "ok\nLocation: https://evil.example/"),
        ("Content-Type", "text/html"),
        ("Content-Type", "text/html; charset=utf-8"),
    ],
)
def test_a_caller_cannot_inject_headers_or_markup_through_the_response_block(
    providers: Any, user: Any, header: str, sent: str
) -> None:
    workflow = workflow_with(
        user,
        {
            "headers": {header: "<webhook.body.value>"},
            "body": "<webhook.body.value>",
            "error_status": 500,
        },
    )
    answer = post(hook(workflow), {"domain": "x.io", "value": sent}, {"Prefer": "wait=10"})
    assert answer["status"] == 500, answer  # the Response step fails: no answer is sent as asked
    assert "set-cookie" not in answer["headers"]
    assert "location" not in answer["headers"]
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["headers"]["x-content-type-options"] == "nosniff"
    assert answer["json"]["block"] == "reply"


@REAL_RUN
def test_a_stranger_cannot_reach_a_run_or_outwait_the_limit(providers: Any, user: Any) -> None:
    workflow = workflow_with(user, {"body": "<lookup.body>"})
    too_long = post(hook(workflow), {"domain": "x.io"}, {"Prefer": "wait=100000"})
    assert too_long["status"] == 400
    assert "KLYNTOS_MAX_WAIT_SECONDS" in too_long["json"]["error"]
    unknown = post("/hooks/not-a-token", {"domain": "x.io"}, {"Prefer": "wait=5"})
    assert unknown["status"] == 404
