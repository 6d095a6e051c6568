"""The REST API's body limit, told before and named after: the workflow says how large a
request the API takes (the Run panel warns before posting more) and every 413 names the
setting that raises its limit (KLYNTOS_REQUEST_MAX_BYTES, or KLYNTOS_WEBHOOK_MAX_BYTES for
webhooks), whichever layer answers it: Django's middleware, the ASGI middleware or daphne's
guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from builder.models import Workflow
from klyntos.body_limit import install_daphne_body_limit, too_large_message

WEBHOOK_GRAPH = {"blocks": [{"id": "w", "type": "webhook", "name": "w", "config": {}}], "edges": []}


def expect(response: Any, status: int) -> Any:
    assert response.status_code == status, getattr(response, "data", response.content[:300])
    return response.json() if response.content else None


def test_the_message_names_the_setting_when_given() -> None:
    assert too_large_message(1024) == "request body is larger than 1024 bytes"
    assert (
        too_large_message(10485760, "KLYNTOS_REQUEST_MAX_BYTES")
        == "request body is larger than 10485760 bytes (KLYNTOS_REQUEST_MAX_BYTES)"
    )


@pytest.mark.django_db
def test_a_workflow_says_how_large_a_request_the_api_takes(api: APIClient, settings: Any) -> None:
    """The Run panel warns before posting an input the server would refuse (100,000 leads
    are 18 MB, past the 10 MB default)."""
    settings.KLYNTOS_REQUEST_MAX_BYTES = 5000
    created = expect(
        api.post("/api/workflows/", {"name": "big", "graph": WEBHOOK_GRAPH}, format="json"), 201
    )
    assert created["request_max_bytes"] == 5000
    read = expect(api.get(f"/api/workflows/{created['id']}/"), 200)
    assert read["request_max_bytes"] == 5000
    listed = expect(api.get("/api/workflows/"), 200)
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [w["request_max_bytes"] for w in rows if w["id"] == created["id"]] == [5000]


@pytest.mark.django_db
def test_a_run_input_over_the_limit_is_413_naming_the_setting(
    api: APIClient, settings: Any
) -> None:
    created = expect(
        api.post("/api/workflows/", {"name": "big", "graph": WEBHOOK_GRAPH}, format="json"), 201
    )
    settings.KLYNTOS_REQUEST_MAX_BYTES = 2048
    body = {"input": {"leads": [{"name": "x" * 100} for _ in range(30)]}, "version": "draft"}
    assert len(json.dumps(body)) > 2048
    response = api.post(f"/api/workflows/{created['id']}/runs/", body, format="json")
    assert response.status_code == 413
    assert response.json() == {
        "error": "request body is larger than 2048 bytes (KLYNTOS_REQUEST_MAX_BYTES)"
    }
    assert not Workflow.objects.get(pk=created["id"]).runs.exists()


def asgi_post(path: str, body: bytes, *, content_length: bool) -> dict[str, Any]:
    from klyntos.asgi import application

    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    if content_length:
        headers.append((b"content-length", str(len(body)).encode()))
    communicator = HttpCommunicator(application, "POST", path, body=body, headers=headers)
    return async_to_sync(communicator.get_response)(timeout=20)


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "streamed"])
def test_the_asgi_layer_names_each_paths_setting(content_length: bool) -> None:
    """Refused before Django (no database, no session): the API's limit on /api/, the
    webhook's on /hooks/."""
    limit = django_settings.KLYNTOS_REQUEST_MAX_BYTES
    response = asgi_post(
        "/api/workflows/1/runs/", b"x" * (limit + 1), content_length=content_length
    )
    assert response["status"] == 413
    assert json.loads(response["body"]) == {
        "error": f"request body is larger than {limit} bytes (KLYNTOS_REQUEST_MAX_BYTES)"
    }

    hook_limit = django_settings.KLYNTOS_WEBHOOK_MAX_BYTES
    response = asgi_post("/hooks/anything", b"x" * (hook_limit + 1), content_length=content_length)
    assert response["status"] == 413
    assert json.loads(response["body"]) == {
        "error": f"request body is larger than {hook_limit} bytes (KLYNTOS_WEBHOOK_MAX_BYTES)"
    }


@pytest.fixture
def daphne_web_request() -> Iterator[Any]:
    """daphne's WebRequest as it was before the test installs its own guard, restored after."""
    from daphne import http_protocol

    original = http_protocol.WebRequest
    yield http_protocol
    http_protocol.WebRequest = original


def test_daphne_guard_names_each_rules_setting_even_with_equal_limits(
    daphne_web_request: Any,
) -> None:
    from twisted.internet.testing import StringTransport

    http_protocol = daphne_web_request
    install_daphne_body_limit(
        max_bytes=10,
        setting="KLYNTOS_WEBHOOK_MAX_BYTES",
        more=[(("/api/",), 10, "KLYNTOS_REQUEST_MAX_BYTES")],
    )
    factory = http_protocol.HTTPFactory(mock.MagicMock())

    def answer(path: str) -> bytes:
        protocol = factory.buildProtocol(("127.0.0.1", 1234))
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n".encode()
        )
        return bytes(transport.value())

    for path, setting in [
        ("/api/workflows/1/runs/", "KLYNTOS_REQUEST_MAX_BYTES"),
        ("/hooks/token", "KLYNTOS_WEBHOOK_MAX_BYTES"),
    ]:
        raw = answer(path)
        assert raw.startswith(b"HTTP/1.1 413 "), raw
        body = raw.split(b"\r\n\r\n", 1)[1]
        assert json.loads(body) == {"error": f"request body is larger than 10 bytes ({setting})"}, (
            path
        )


def test_daphne_guard_still_takes_two_member_rules(daphne_web_request: Any) -> None:
    from twisted.internet.testing import StringTransport

    http_protocol = daphne_web_request
    install_daphne_body_limit(max_bytes=10, more=[(("/api/",), 20)])
    protocol = http_protocol.HTTPFactory(mock.MagicMock()).buildProtocol(("127.0.0.1", 1))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"POST /api/x/ HTTP/1.1\r\nHost: t\r\nContent-Length: 21\r\n\r\n")
    body = bytes(transport.value()).split(b"\r\n\r\n", 1)[1]
    assert json.loads(body) == {"error": "request body is larger than 20 bytes"}
