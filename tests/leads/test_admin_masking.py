"""The workflow tables' admin masks each row with its own owner's secrets only (defect 5).

Masking with every owner's values made the admin an oracle: Mallory (staff) wrote guesses
into her own rows, and the one equal to Alice's secret came back `[redacted]`; a short or
common value of anyone's masked everyone's cells. Through the test client: the list and
the CSV export, for a plain staff user and for a superuser who sees both owners."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from builder.services import secret_set
from engine import secrets_registry
from leads import owner_data
from tests.leads.rows import drop_all_owner_data

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

ALICE_KEY = "sup3r-s3cret-VALUE-xyz"
COMMON = "https"
WRONG_GUESS = "sup3r-s3cret-VALUE-abc"


def insert(owner: Any, lead_id: str, name: str) -> None:
    owners = owner_data.store()
    owners.provision(owner.pk)
    with connections["data"].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO owner_{owner.pk}.enriched_leads (lead_id, name, company, title, email,"  # noqa: S608 - an integer id
            " budget_estimate, urgency_level, linkedin_url, qualification_score, enriched_at)"
            " VALUES (%s, %s, '', '', '', '', '', %s, 5, now())",
            [lead_id, name, f"https://in.example/{lead_id}"],
        )


def ran_a_workflow(owner: Any) -> None:
    """What a run of `owner`'s does with their secrets in this process (engine/runner.py):
    reads them through owner_env, and registers them for the logs."""
    secrets_registry.register(secrets_registry.owner_env(owner.pk).values())


@pytest.fixture
def people(django_user_model: Any) -> dict[str, Any]:
    drop_all_owner_data()
    secrets_registry.forget_owners()
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123", is_staff=True)
    mallory = django_user_model.objects.create_user(
        "mallory", password="pw-mallory-123", is_staff=True
    )
    root = django_user_model.objects.create_superuser("root", password="pw-root-123")
    secret_set(owner=alice, name="COMMON", value=COMMON)
    secret_set(owner=alice, name="ALICE_KEY", value=ALICE_KEY)
    ran_a_workflow(alice)
    insert(alice, "a1", f"echoed {ALICE_KEY}")
    insert(mallory, "m1", ALICE_KEY)  # the right guess
    insert(mallory, "m2", WRONG_GUESS)
    return {"alice": alice, "mallory": mallory, "root": root}


def listing(user: Any) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/admin/leads/enrichedlead/")
    assert response.status_code == 200
    return response.content.decode()


def exported(user: Any) -> list[dict[str, str]]:
    client = Client()
    client.force_login(user)
    response = client.get("/admin/leads/enrichedlead/export.csv")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_another_owners_secret_masks_nothing_in_my_rows(people: dict[str, Any]) -> None:
    mallory = people["mallory"]
    html = listing(mallory)
    # A right guess and a wrong one read the same: both as written, nothing confirmed.
    assert ALICE_KEY in html and WRONG_GUESS in html and "[redacted]" not in html
    rows = {row["lead_id"]: row for row in exported(mallory)}
    assert rows["m1"]["name"] == ALICE_KEY and rows["m2"]["name"] == WRONG_GUESS
    # Alice's short secret does not corrupt Mallory's cells.
    assert rows["m1"]["linkedin_url"] == "https://in.example/m1"


def test_my_own_secrets_are_masked_in_my_rows(people: dict[str, Any]) -> None:
    alice = people["alice"]
    html = listing(alice)
    assert ALICE_KEY not in html and "echoed [redacted]" in html
    [row] = exported(alice)
    assert row["name"] == "echoed [redacted]"
    assert row["linkedin_url"] == "[redacted]://in.example/a1"  # her own choice of secret


def test_a_superuser_sees_each_row_masked_with_its_own_owners_secrets(
    people: dict[str, Any],
) -> None:
    root = people["root"]
    rows = {row["lead_id"]: row for row in exported(root)}
    assert rows["a1"]["name"] == "echoed [redacted]"
    assert rows["a1"]["linkedin_url"] == "[redacted]://in.example/a1"
    assert rows["m1"]["name"] == ALICE_KEY  # Mallory's row: Mallory's secrets (none)
    assert rows["m1"]["linkedin_url"] == "https://in.example/m1"
    html = listing(root)
    assert "echoed [redacted]" in html and html.count(ALICE_KEY) == 1


def test_a_rotated_secret_still_masks_what_the_owners_runs_wrote(people: dict[str, Any]) -> None:
    alice, mallory = people["alice"], people["mallory"]
    secret_set(owner=alice, name="ALICE_KEY", value="the-new-value-0987")
    [row] = exported(alice)
    assert row["name"] == "echoed [redacted]"  # her earlier value, read by her run here
    assert {r["name"] for r in exported(mallory)} == {ALICE_KEY, WRONG_GUESS}
