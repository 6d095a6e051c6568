"""The run admin masks each run's data with its own owner's secrets only (defect 5): a
value equal to another owner's secret is shown as written, so no page confirms a guess."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from builder.services import run_create, secret_set, workflow_create
from engine import secrets_registry

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ALICE_KEY = "sup3r-s3cret-VALUE-xyz"
BOB_KEY = "bob-only-token-4242"
GRAPH = {"blocks": [{"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}]}


def run_page(user: Any, run: Any) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/admin/engine/run/{run.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_each_run_is_masked_with_its_own_owners_secrets(django_user_model: Any) -> None:
    secrets_registry.forget_owners()
    root = django_user_model.objects.create_superuser("root", password="pw-root-123")
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123")
    bob = django_user_model.objects.create_user("bob", password="pw-bob-123")
    secret_set(owner=alice, name="ALICE_KEY", value=ALICE_KEY)
    secret_set(owner=bob, name="BOB_KEY", value=BOB_KEY)
    for owner in (alice, bob):  # both ran workflows in this process
        secrets_registry.register(secrets_registry.owner_env(owner.pk).values())
    body = {"mine": "", "theirs": ""}
    alices, _ = run_create(
        workflow=workflow_create(owner=alice, name="a", graph=GRAPH),
        input={**body, "mine": ALICE_KEY, "theirs": BOB_KEY},
    )
    bobs, _ = run_create(
        workflow=workflow_create(owner=bob, name="b", graph=GRAPH),
        input={**body, "mine": BOB_KEY, "theirs": ALICE_KEY},
    )
    page = run_page(root, alices)
    assert ALICE_KEY not in page and "[redacted]" in page and BOB_KEY in page
    page = run_page(root, bobs)
    assert BOB_KEY not in page and "[redacted]" in page and ALICE_KEY in page
