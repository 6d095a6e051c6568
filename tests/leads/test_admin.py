"""The enriched-leads admin over per-owner data: each user their own rows, a superuser
everyone's with an owner column and filter; nobody adds, edits or deletes there."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from leads import owner_data
from tests.leads.rows import drop_all_owner_data

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def insert(owners: owner_data.OwnerStore, owner: Any, lead_id: str, name: str, score: int) -> None:
    owners.provision(owner.pk)
    values = [lead_id, name, score]
    if isinstance(owners, owner_data.SqliteOwners):
        with sqlite3.connect(owners.path(owner.pk)) as conn:
            conn.execute(
                "INSERT INTO enriched_leads (lead_id, name, company, title, email, budget_estimate,"
                " urgency_level, linkedin_url, qualification_score, enriched_at)"
                " VALUES (?, ?, '', '', '', '', '', '', ?, '2026-01-01 00:00:00')",
                values,
            )
        return
    with connections["data"].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO owner_{owner.pk}.enriched_leads (lead_id, name, company, title, email,"  # noqa: S608 - an integer id
            " budget_estimate, urgency_level, linkedin_url, qualification_score, enriched_at)"
            " VALUES (%s, %s, '', '', '', '', '', '', %s, now())",
            values,
        )


@pytest.fixture(params=["postgresql", "sqlite"])
def owners(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> owner_data.OwnerStore:
    if request.param == "postgresql":
        drop_all_owner_data()
        return owner_data.store()
    store = owner_data.SqliteOwners(tmp_path / "owners")
    monkeypatch.setattr(owner_data, "store", lambda: store)
    return store


def listing(user: Any, query: str = "") -> str:
    client = Client()
    client.force_login(user)
    page = client.get(f"/admin/leads/enrichedlead/{query}")
    assert page.status_code == 200
    return page.content.decode()


def test_each_user_sees_their_own_rows_and_a_superuser_everyones(
    owners: owner_data.OwnerStore, django_user_model: Any
) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123", is_staff=True)
    bob = django_user_model.objects.create_user("bob", password="pw-bob-123", is_staff=True)
    root = django_user_model.objects.create_superuser("root", password="pw-root-123")
    insert(owners, alice, "a1", "Alice Lead", 9)
    insert(owners, alice, "a2", "Alice Other <b>bold</b>", 3)
    insert(owners, bob, "b1", "Bob Lead", 7)

    mine = listing(alice)
    assert "Alice Lead" in mine and "2 enriched leads" in mine and "Bob Lead" not in mine
    assert "<b>bold</b>" not in mine and "&lt;b&gt;bold&lt;/b&gt;" in mine
    assert 'class="field-owner"' not in mine  # no owner column for a plain user
    theirs = listing(bob)
    assert "Bob Lead" in theirs and "Alice" not in theirs and "1 enriched lead" in theirs

    everyone = listing(root)
    assert "3 enriched leads" in everyone
    # Ordered by score across owners, each row naming its owner.
    assert everyone.index("Alice Lead") < everyone.index("Bob Lead") < everyone.index("Alice Other")
    assert '<td class="field-owner">alice</td>' in everyone
    assert '<td class="field-owner">bob</td>' in everyone
    only_bob = listing(root, f"?owner={bob.pk}")
    assert "Bob Lead" in only_bob and "Alice Lead" not in only_bob
    searched = listing(root, "?q=other")
    assert "Alice Other" in searched and "1 enriched lead" in searched


def test_the_list_cannot_be_added_to_edited_or_deleted_from(
    owners: owner_data.OwnerStore, django_user_model: Any
) -> None:
    root = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client = Client()
    client.force_login(root)
    assert client.get("/admin/leads/enrichedlead/add/").status_code == 404
    assert client.post("/admin/leads/enrichedlead/1/delete/", {"post": "yes"}).status_code == 404
    assert b"/admin/leads/enrichedlead/add/" not in client.get("/admin/").content


def test_a_user_who_is_not_staff_has_no_list(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("plain", password="pw-plain-123")
    client = Client()
    client.force_login(user)
    assert client.get("/admin/leads/enrichedlead/").status_code == 302
