"""POST /hooks/<token>: every refusal (and that it creates no run), signatures, idempotency,
the status URL, and the body limit of the real ASGI application."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from builder.services import webhook_rotate_secret
from builder.webhook_security import sign_payload
from engine.models import Run

JSON = "application/json"
# Runs execute on the executor thread (own connections); the database block writes to `data`.
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def hook_url(workflow: Any) -> str:
    return f"/hooks/{workflow.webhook.token}"


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


@contextmanager
def creates_no_run() -> Iterator[None]:
    before = Run.objects.count()
    yield
    assert Run.objects.count() == before, "a refused webhook request created a Run"


def post(
    client: Client, workflow: Any, raw: bytes, content_type: str = JSON, **headers: str
) -> Any:
    return client.post(hook_url(workflow), data=raw, content_type=content_type, headers=headers)


def signature(secret: str, raw: bytes, at: float | None = None) -> dict[str, str]:
    return {
        "X-Klyntos-Signature": sign_payload(secret, raw, int(time.time() if at is None else at))
    }


@pytest.fixture
def body(leads: list[dict[str, Any]]) -> bytes:
    return dumps({"leads": leads})


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_token_is_404(client: Client, lead_workflow: Any, body: bytes) -> None:
    with creates_no_run():
        response = client.post("/hooks/not-a-real-token", data=body, content_type=JSON)
        assert response.status_code == 404
        assert "error" in response.json()
        # One character off the real token is just as unknown.
        response = client.post(hook_url(lead_workflow)[:-1] + "#", data=body, content_type=JSON)
        assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_non_json_content_type_is_415(
    client: Client, lead_workflow: Any, body: bytes, content_type: str
) -> None:
    with creates_no_run():
        response = post(client, lead_workflow, body, content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"] == "expected application/json"


@pytest.mark.django_db
def test_a_compressed_body_is_415_with_what_to_do(client: Client, lead_workflow: Any) -> None:
    compressed = gzip.compress(b'{"leads": []}')
    with creates_no_run():
        response = post(client, lead_workflow, compressed, **{"Content-Encoding": "gzip"})
    assert response.status_code == 415
    assert response.json()["error"] == (
        "Content-Encoding 'gzip' is not accepted: send the body uncompressed"
    )
    ok = post(client, lead_workflow, b'{"leads": []}', **{"Content-Encoding": "identity"})
    assert ok.status_code in (200, 201, 202), ok.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"leads": [', "malformed JSON"),
        (b'{"leads": []} trailing', "malformed JSON"),
        (b"   ", "empty request body"),
        (b'{"leads": [], "x": NaN}', "finite"),
        (b'{"leads": "\xff"}', "UTF-8"),
    ],
)
def test_malformed_body_is_400(
    client: Client, lead_workflow: Any, raw: bytes, fragment: str
) -> None:
    with creates_no_run():
        response = post(client, lead_workflow, raw)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


@pytest.mark.django_db
def test_too_deep_body_is_400(client: Client, lead_workflow: Any) -> None:
    depth = settings.KLYNTOS_WEBHOOK_MAX_DEPTH
    too_deep = b'{"leads": [], "x": ' + b"[" * depth + b"]" * depth + b"}"
    with creates_no_run():
        response = post(client, lead_workflow, too_deep)
        assert response.status_code == 400
        assert f"deeper than {depth}" in response.json()["error"]
        # 100,000 levels: refused by the pre-scan, not a RecursionError (500).
        response = post(client, lead_workflow, b"[" * 100_000 + b"]" * 100_000)
        assert response.status_code == 400


@pytest.mark.django_db
def test_body_at_max_depth_is_accepted(client: Client, lead_workflow: Any) -> None:
    depth = settings.KLYNTOS_WEBHOOK_MAX_DEPTH
    # The object itself is level 1, so depth - 1 more brackets reach exactly max_depth.
    deepest = b'{"leads": [], "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    response = post(client, lead_workflow, deepest)
    assert response.status_code == 202, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"people": []}, "'leads' is a required property"),
        ({"leads": "everyone"}, "leads: 'everyone' is not of type 'array'"),
        ({"leads": [{"id": 1, "name": "Ada", "domain": "a.example"}]}, "leads.0: 'email'"),
        ([1, 2, 3], "is not of type 'object'"),
    ],
)
def test_schema_failure_is_422(
    client: Client, lead_workflow: Any, payload: Any, detail: str
) -> None:
    with creates_no_run():
        response = post(client, lead_workflow, dumps(payload))
    assert response.status_code == 422
    data = response.json()
    assert data["error"] == "the body does not match the webhook's schema"
    assert any(detail in line for line in data["details"]), data["details"]


@pytest.mark.django_db
def test_overlong_idempotency_key_is_400(client: Client, lead_workflow: Any, body: bytes) -> None:
    with creates_no_run():
        response = post(client, lead_workflow, body, **{"Idempotency-Key": "k" * 201})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]


@pytest.mark.django_db
def test_get_on_the_hook_is_405(client: Client, lead_workflow: Any) -> None:
    with creates_no_run():
        response = client.get(hook_url(lead_workflow))
        assert response.status_code == 405
        assert "POST" in response["Allow"]
        assert client.put(hook_url(lead_workflow), data=b"{}", content_type=JSON).status_code == 405


# --- signatures --------------------------------------------------------------------------


@pytest.fixture
def secret(lead_workflow: Any) -> str:
    return webhook_rotate_secret(webhook=lead_workflow.webhook)


@pytest.mark.django_db
def test_signed_hook_refuses_missing_bad_and_stale_signatures(
    client: Client, lead_workflow: Any, body: bytes, secret: str
) -> None:
    other = {"leads": []}
    # Built at post time: the window is measured from the moment each request arrives.
    cases = {
        "missing": lambda: {},
        "empty": lambda: {"X-Klyntos-Signature": ""},
        "garbage": lambda: {"X-Klyntos-Signature": "not a signature"},
        "wrong secret": lambda: signature("whsec_wrong", body),
        "other body": lambda: {
            "X-Klyntos-Signature": sign_payload(secret, dumps(other), int(time.time()))
        },
        "stale": lambda: signature(secret, body, at=time.time() - 310),
        "from the future": lambda: signature(secret, body, at=time.time() + 310),
    }
    with creates_no_run():
        for name, headers in cases.items():
            response = post(client, lead_workflow, body, **headers())
            assert response.status_code == 401, (
                f"{name}: {response.status_code} {response.content!r}"
            )
            assert response.json()["error"], name


@pytest.mark.django_db
def test_rotating_the_secret_invalidates_the_old_one(
    client: Client, lead_workflow: Any, body: bytes, secret: str
) -> None:
    newer = webhook_rotate_secret(webhook=lead_workflow.webhook)
    assert newer != secret
    with creates_no_run():
        assert post(client, lead_workflow, body, **signature(secret, body)).status_code == 401
    assert post(client, lead_workflow, body, **signature(newer, body)).status_code == 202


@pytest.mark.django_db
def test_good_signature_is_202_with_run_id_and_status_url(
    client: Client, lead_workflow: Any, body: bytes, secret: str, leads: list[dict[str, Any]]
) -> None:
    before = Run.objects.count()
    response = post(client, lead_workflow, body, **signature(secret, body))
    assert response.status_code == 202, response.content
    data = response.json()
    assert set(data) == {"run_id", "status_url"}
    run = Run.objects.get(pk=data["run_id"])
    assert Run.objects.count() == before + 1
    assert run.workflow_id == lead_workflow.pk
    assert run.trigger == "webhook"
    assert run.input == {"leads": leads}
    assert run.version_id == lead_workflow.current_version_id
    assert data["status_url"] == "http://testserver" + reverse("run-detail", args=[run.pk])
    assert "Idempotent-Replayed" not in response


@pytest.mark.django_db
def test_an_unsigned_hook_accepts_unsigned_posts(
    client: Client, lead_workflow: Any, body: bytes
) -> None:
    response = post(client, lead_workflow, body)
    assert response.status_code == 202, response.content
    assert Run.objects.filter(pk=response.json()["run_id"]).exists()


# --- idempotency -------------------------------------------------------------------------


@pytest.mark.django_db
def test_same_idempotency_key_and_body_replays_the_same_run(
    client: Client, lead_workflow: Any, body: bytes
) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = post(client, lead_workflow, body, **key)
    assert first.status_code == 202
    with creates_no_run():
        again = post(client, lead_workflow, body, **key)
        # The same JSON value with other whitespace is the same body.
        spaced = post(client, lead_workflow, json.dumps(json.loads(body), indent=2).encode(), **key)
    assert again.status_code == 202
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again["Idempotent-Replayed"] == "true"
    assert spaced.status_code == 202
    assert spaced.json()["run_id"] == first.json()["run_id"]
    assert Run.objects.filter(idempotency_key="order-42").count() == 1


@pytest.mark.django_db
def test_same_idempotency_key_with_another_body_is_409(
    client: Client, lead_workflow: Any, body: bytes, leads: list[dict[str, Any]]
) -> None:
    key = {"Idempotency-Key": "order-43"}
    first = post(client, lead_workflow, body, **key)
    assert first.status_code == 202
    with creates_no_run():
        conflict = post(client, lead_workflow, dumps({"leads": leads[:1]}), **key)
    assert conflict.status_code == 409
    assert "Idempotency-Key" in conflict.json()["error"]
    # Another key with that body is a new run.
    other = post(
        client, lead_workflow, dumps({"leads": leads[:1]}), **{"Idempotency-Key": "order-44"}
    )
    assert other.status_code == 202
    assert other.json()["run_id"] != first.json()["run_id"]


# --- the status URL ----------------------------------------------------------------------


@pytest.mark.django_db
def test_status_url_answers_the_owner_and_404s_for_anyone_else(
    client: Client, lead_workflow: Any, body: bytes, api: APIClient, other_api: APIClient
) -> None:
    response = post(client, lead_workflow, body)
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    path = urlparse(response.json()["status_url"]).path

    mine = api.get(path)
    assert mine.status_code == 200
    assert mine.json()["id"] == run_id
    assert mine.json()["status"] in {"queued", "running", "succeeded"}
    assert mine.json()["trigger"] == "webhook"

    theirs = other_api.get(path)
    assert theirs.status_code == 404
    assert run_id not in theirs.content.decode()

    assert APIClient().get(path).status_code in (401, 403)


@REAL_RUN
def test_webhook_run_executes_and_its_status_url_reports_success(
    client: Client,
    providers: Any,
    finish_run: Any,
    lead_workflow: Any,
    body: bytes,
    secret: str,
    api: APIClient,
) -> None:
    response = post(client, lead_workflow, body, **signature(secret, body))
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    finish_run(run_id)
    status = api.get(urlparse(response.json()["status_url"]).path)
    assert status.status_code == 200
    data = status.json()
    assert data["status"] == "succeeded", data["error"]
    assert data["progress"] == {
        "total": 5,
        "succeeded": 5,
        "failed": 0,
        "cancelled": 0,
        "not_started": 0,
        "running": 0,
    }
    assert providers.control.stats()["requests"]["clearbit"] == 5


# --- body limit, through the real ASGI application ---------------------------------------


def asgi_post(path: str, raw: bytes, *, content_length: bool) -> dict[str, Any]:
    from klyntos.asgi import application

    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    if content_length:
        headers.append((b"content-length", str(len(raw)).encode()))

    async def call() -> dict[str, Any]:
        communicator = HttpCommunicator(application, "POST", path, body=raw, headers=headers)
        try:
            return await communicator.get_response(timeout=10)
        finally:
            # Otherwise a connection opened for the request outlives it and keeps the test
            # database from being dropped at the end of the session.
            await sync_to_async(connections.close_all)()

    return async_to_sync(call)()


def padded(size: int) -> bytes:
    """A valid body (`{"leads": [], "pad": "xxx…"}`) of exactly `size` bytes."""
    shell = dumps({"leads": [], "pad": ""})
    raw = shell[:-2] + b"x" * (size - len(shell)) + b'"}'
    assert len(raw) == size
    json.loads(raw)
    return raw


@REAL_RUN
@pytest.mark.parametrize(
    "content_length", [True, False], ids=["content-length", "no-content-length"]
)
def test_oversized_body_through_asgi_is_413_and_creates_no_run(
    providers: Any, finish_run: Any, lead_workflow: Any, content_length: bool
) -> None:
    limit = settings.KLYNTOS_WEBHOOK_MAX_BYTES
    with creates_no_run():
        response = asgi_post(
            hook_url(lead_workflow), padded(limit + 1), content_length=content_length
        )
    assert response["status"] == 413, response["body"][:200]
    assert json.loads(response["body"]) == {
        "error": f"request body is larger than {limit} bytes (KLYNTOS_WEBHOOK_MAX_BYTES)"
    }

    # The same app takes a body of exactly the limit: the 413 above was the size, nothing else.
    accepted = asgi_post(hook_url(lead_workflow), padded(limit), content_length=content_length)
    assert accepted["status"] == 202, accepted["body"][:300]
    run_id = json.loads(accepted["body"])["run_id"]
    assert Run.objects.filter(pk=run_id).exists()
    finish_run(run_id)


# --- bodies PostgreSQL cannot store, invalid workflows ------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (rb'{"leads": [], "note": "a\u0000b"}', "NUL character"),
        (rb'{"leads": [], "note": "\ud800"}', "unpaired surrogate"),
        (rb'{"leads": [], "\u0000": 1}', "NUL character"),
    ],
)
def test_strings_jsonb_cannot_store_are_400(
    client: Client, lead_workflow: Any, raw: bytes, fragment: str
) -> None:
    with creates_no_run():
        response = post(client, lead_workflow, raw)
    assert response.status_code == 400, response.content
    assert fragment in response.json()["error"]


@pytest.mark.django_db
def test_an_invalid_workflow_is_409_without_its_validation_errors(
    client: Client, lead_workflow: Any, body: bytes
) -> None:
    from builder.models import Secret

    Secret.objects.filter(owner=lead_workflow.owner).delete()  # the template reads two
    with creates_no_run():
        response = post(client, lead_workflow, body)
    assert response.status_code == 409
    assert response.json() == {"error": "the workflow is not valid; open it in the editor"}
    assert b"CLEARBIT_API_KEY" not in response.content
