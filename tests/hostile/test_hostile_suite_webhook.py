"""Hostile webhooks: content-type confusion, invalid UTF-8, oversize bodies without a
Content-Length, and the signature rules (tolerance window, tampering, rotation).

Framing attacks go over raw sockets to the served app (daphne); the rest through the Django
client against the real PostgreSQL. Every refusal must create no run.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from builder import gallery
from builder.services import webhook_rotate_secret
from builder.webhook_security import DEFAULT_TOLERANCE, sign_payload
from engine.models import Run
from tests.hostile.conftest import REAL_RUN, ServedApp

# Two of the template's sample leads: a body the lead workflow's schema accepts.
BODY = json.dumps(
    {"leads": gallery.template_get("parallel-lead-enrichment")["sample"]["leads"][:2]}
)


@contextmanager
def creates_no_run() -> Iterator[None]:
    before = Run.objects.count()
    yield
    assert Run.objects.count() == before, "a refused webhook request created a run"


def hook(workflow: Any) -> str:
    return f"/hooks/{workflow.webhook.token}"


# --- content-type confusion ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "application/+json",
        "application/json-seq",
        "json",
        "",
    ],
)
def test_a_json_body_under_any_other_content_type_is_415(
    client: Client, lead_workflow: Any, content_type: str
) -> None:
    # A browser form (text/plain, urlencoded, multipart) can post cross-site without a
    # preflight: accepting JSON under those types would let any page trigger runs.
    with creates_no_run():
        response = client.post(hook(lead_workflow), data=BODY, content_type=content_type)
    assert response.status_code == 415, response.content
    assert response.json() == {"error": "expected application/json"}


@pytest.mark.django_db
def test_form_fields_shaped_like_json_are_not_parsed(client: Client, lead_workflow: Any) -> None:
    with creates_no_run():
        response = client.post(hook(lead_workflow), data={"leads": "[]"})  # multipart
    assert response.status_code == 415


@REAL_RUN
@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=utf-8", "application/lead+json"]
)
def test_json_media_types_are_accepted(
    client: Client, lead_workflow: Any, providers: Any, finish_run: Any, content_type: str
) -> None:
    response = client.post(hook(lead_workflow), data=BODY, content_type=content_type)
    assert response.status_code == 202, response.content
    finish_run(response.json()["run_id"])


def test_served_app_refuses_a_text_plain_json_body(served_app: ServedApp) -> None:
    before = served_app.runs()
    answer = served_app.client.post(
        served_app.hook_url, content=BODY.encode(), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415 and answer.json() == {"error": "expected application/json"}
    assert served_app.runs() == before


# --- invalid UTF-8 ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "byte"),
    [
        (b'{"name": "\xff"}', 10),  # not UTF-8 at all
        (b'{"name": "\xc0\xaf"}', 10),  # overlong "/"
        (b'{"name": "\xed\xa0\x80"}', 10),  # a UTF-16 surrogate encoded as UTF-8
        (b'{"name": "caf\xe9"}', 13),  # Latin-1
        (b"\xfe\xff\x00{\x00}", 0),  # UTF-16 with a BOM
    ],
)
def test_invalid_utf8_is_400_naming_the_byte(
    client: Client, lead_workflow: Any, raw: bytes, byte: int
) -> None:
    with creates_no_run():
        response = client.post(hook(lead_workflow), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": f"request body is not valid UTF-8 (byte {byte})"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("escape", "what"), [(r"\u0000", "NUL character"), (r"\udc00", "unpaired surrogate")]
)
def test_escapes_postgresql_cannot_store_are_400(
    client: Client, lead_workflow: Any, escape: str, what: str
) -> None:
    raw = ('{"leads": [{"name": "a' + escape + '"}]}').encode()
    with creates_no_run():
        response = client.post(hook(lead_workflow), data=raw, content_type="application/json")
    assert response.status_code == 400 and what in response.json()["error"]


def test_served_app_refuses_invalid_utf8(served_app: ServedApp) -> None:
    before = served_app.runs()
    answer = served_app.client.post(
        served_app.hook_url,
        content=b'{"leads": [{"name": "\xff\xfe"}]}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "request body is not valid UTF-8 (byte 21)"}
    assert served_app.runs() == before


# --- oversize bodies without a Content-Length (the served app: daphne framing) ------------


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        None,
    )
    while length is not None and len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def test_an_endless_chunked_body_is_cut_off_with_413(served_app: ServedApp) -> None:
    """No Content-Length, a body that never ends: the server answers 413 once the limit
    (1 MiB by default) is passed instead of buffering what the client keeps sending."""
    before = served_app.runs()
    path = urlsplit(served_app.hook_url).path
    piece = b"[" + b" " * (64 * 1024 - 2) + b"]"
    with socket.create_connection(("127.0.0.1", served_app.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent = 0
        answered = False
        while sent < 8 * 1024 * 1024:  # far past the limit, never a final chunk
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += len(piece)
            # Patient once past the limit, so a slow host cannot flake.
            if select.select([sock], [], [], 2.0 if sent > 1024 * 1024 else 0)[0]:
                answered = True
                break
        assert answered, "the server kept reading 8 MiB of a chunked body without answering"
        assert sent <= 1024 * 1024 + len(piece), f"answered only after {sent} bytes"
        status, body = _read_response(sock)
    assert status == 413, body
    assert json.loads(body) == {
        "error": "request body is larger than 1048576 bytes (KLYNTOS_WEBHOOK_MAX_BYTES)"
    }
    assert served_app.runs() == before


def test_a_content_length_over_the_limit_is_413_before_the_body(served_app: ServedApp) -> None:
    before = served_app.runs()
    path = urlsplit(served_app.hook_url).path
    with socket.create_connection(("127.0.0.1", served_app.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1073741824\r\n\r\n".encode()
        )
        assert select.select([sock], [], [], 5)[0], "no answer without sending the body"
        status, body = _read_response(sock)
    assert status == 413 and b"larger than" in body
    assert served_app.runs() == before


# --- signatures ----------------------------------------------------------------------------


@pytest.fixture
def signing_secret(lead_workflow: Any) -> str:
    return webhook_rotate_secret(webhook=lead_workflow.webhook)


def post_signed(client: Client, workflow: Any, raw: bytes, header: str | None) -> Any:
    headers = {} if header is None else {"X-Klyntos-Signature": header}
    return client.post(hook(workflow), data=raw, content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_unsigned_and_forged_deliveries_are_401(
    client: Client, lead_workflow: Any, signing_secret: str
) -> None:
    raw = BODY.encode()
    now = int(time.time())
    forged = [
        (None, "missing signature header"),
        ("", "missing signature header"),
        (sign_payload("not-the-secret", raw, now), "signature does not match"),
        (f"t={now},v1={'0' * 64}", "signature does not match"),
        (f"t={now}", "malformed signature header"),
        (f"v1={'0' * 64}", "malformed signature header"),
        (f"t={now},v1=zz", "malformed signature header"),
        (f"t=-{now},v1={'0' * 64}", "malformed signature header"),
        (f"t={now},t={now},v1={'0' * 64}", "malformed signature header"),
        (f"t=１２３,v1={'0' * 64}", "malformed signature header"),  # full-width digits
    ]
    with creates_no_run():
        for header, message in forged:
            response = post_signed(client, lead_workflow, raw, header)
            assert response.status_code == 401, header
            assert response.json() == {"error": message}, header


@pytest.mark.django_db
def test_a_signature_covers_the_exact_bytes_and_the_timestamp(
    client: Client, lead_workflow: Any, signing_secret: str
) -> None:
    raw = BODY.encode()
    now = int(time.time())
    header = sign_payload(signing_secret, raw, now)
    t, v1 = header.split(",")
    reserialised = json.dumps(json.loads(raw), indent=1).encode()  # same JSON, other bytes
    tampered = raw.replace(b"@", b"%")
    with creates_no_run():
        for body, signature in [
            (reserialised, header),
            (tampered, header),
            (raw, f"t={now + 1},{v1}"),  # the timestamp moved, the digest did not
            (raw + b" ", header),
        ]:
            response = post_signed(client, lead_workflow, body, signature)
            assert response.status_code == 401
            assert response.json() == {"error": "signature does not match"}


@pytest.mark.django_db
@pytest.mark.parametrize("skew", [DEFAULT_TOLERANCE + 5, -(DEFAULT_TOLERANCE + 5), 10**9])
def test_a_replay_outside_the_tolerance_window_is_401(
    client: Client, lead_workflow: Any, signing_secret: str, skew: int
) -> None:
    """A captured delivery, correctly signed, replayed too late (or dated in the future)."""
    raw = BODY.encode()
    at = max(0, int(time.time()) - skew)
    with creates_no_run():
        response = post_signed(client, lead_workflow, raw, sign_payload(signing_secret, raw, at))
    assert response.status_code == 401
    assert response.json() == {"error": "signature timestamp outside the 5-minute window"}


@REAL_RUN
def test_a_signed_delivery_inside_the_window_starts_a_run(
    client: Client, lead_workflow: Any, signing_secret: str, providers: Any, finish_run: Any
) -> None:
    raw = BODY.encode()
    at = int(time.time()) - (DEFAULT_TOLERANCE - 30)
    # Rotation: a sender may sign with the old and the new secret at once.
    header = sign_payload(signing_secret, raw, at) + f",v1={'0' * 64}"
    response = post_signed(client, lead_workflow, raw, header)
    assert response.status_code == 202, response.content
    finish_run(response.json()["run_id"])


@pytest.mark.django_db
def test_after_rotation_the_old_secret_no_longer_signs(
    client: Client, lead_workflow: Any, signing_secret: str
) -> None:
    raw = BODY.encode()
    webhook_rotate_secret(webhook=lead_workflow.webhook)
    with creates_no_run():
        response = post_signed(
            client, lead_workflow, raw, sign_payload(signing_secret, raw, int(time.time()))
        )
    assert response.status_code == 401


@pytest.mark.django_db
def test_the_signature_is_checked_before_the_body_is_parsed(
    client: Client, lead_workflow: Any, signing_secret: str
) -> None:
    """An unsigned caller learns nothing about the body rules (415/400 would leak them)."""
    with creates_no_run():
        for raw, content_type in [(b"\xff", "application/json"), (b"{}", "text/plain")]:
            response = client.post(hook(lead_workflow), data=raw, content_type=content_type)
            assert response.status_code == 401
