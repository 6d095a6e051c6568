"""A signed delivery replayed verbatim within its window starts no second run (issue 7,
finding 7): deliveries are recorded by signature (unique per webhook) and pruned after."""

from __future__ import annotations

import datetime
import json
import threading
import time
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from builder.models import WebhookDelivery
from builder.services import webhook_rotate_secret, workflow_create
from builder.webhook_security import sign_payload
from engine.models import Run

GRAPH = {
    "blocks": [{"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}],
    "edges": [],
}
BODY = json.dumps({"lead": "Ada"}).encode()


@pytest.fixture
def signed(django_user_model: Any) -> tuple[Any, str]:
    owner = django_user_model.objects.create_user("hooked", password="pw-hooked-123")
    workflow = workflow_create(owner=owner, name="signed", graph=GRAPH)
    return workflow, webhook_rotate_secret(webhook=workflow.webhook)


def deliver(workflow: Any, header: str, body: bytes = BODY) -> Any:
    return Client().post(
        f"/hooks/{workflow.webhook.token}",
        data=body,
        content_type="application/json",
        headers={"X-Klyntos-Signature": header},
    )


@pytest.mark.django_db
def test_a_verbatim_replay_returns_the_first_run(signed: tuple[Any, str]) -> None:
    workflow, secret = signed
    header = sign_payload(secret, BODY, int(time.time()))
    first = deliver(workflow, header)
    assert first.status_code == 202, first.content
    replay = deliver(workflow, header)
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["run_id"] == first.json()["run_id"]
    assert Run.objects.filter(workflow=workflow).count() == 1
    # A new signature (a later timestamp: a new delivery) is a new run.
    later = deliver(workflow, sign_payload(secret, BODY, int(time.time()) + 1))
    assert later.status_code == 202 and later.json()["run_id"] != first.json()["run_id"]
    assert Run.objects.filter(workflow=workflow).count() == 2


@pytest.mark.django_db
def test_deliveries_past_their_window_are_pruned(signed: tuple[Any, str]) -> None:
    workflow, secret = signed
    stale = WebhookDelivery.objects.create(
        webhook=workflow.webhook,
        signature="0" * 64,
        expires_at=timezone.now() - datetime.timedelta(seconds=1),
    )
    signed_at = int(time.time())
    assert deliver(workflow, sign_payload(secret, BODY, signed_at)).status_code == 202
    assert not WebhookDelivery.objects.filter(pk=stale.pk).exists()
    kept = WebhookDelivery.objects.get(webhook=workflow.webhook)
    assert kept.run is not None
    assert kept.expires_at == datetime.datetime.fromtimestamp(signed_at + 300, datetime.UTC)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_replays_start_one_run(signed: tuple[Any, str]) -> None:
    workflow, secret = signed
    header = sign_payload(secret, BODY, int(time.time()))
    answers: list[Any] = []
    gate = threading.Barrier(6)

    def send() -> None:
        try:
            gate.wait()
            answers.append(deliver(workflow, header))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [202] * 6
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert Run.objects.filter(workflow=workflow).count() == 1
