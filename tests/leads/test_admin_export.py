"""CSV export of the per-owner workflow tables from the admin: what the list shows (search and
owner filter applied, every page), every column, formula-like cells defused, on PostgreSQL
and SQLite; the emails and image tables are listed like the enriched leads."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from leads import owner_data
from leads.admin import EXPORT_CHUNK
from tests.leads.rows import drop_all_owner_data

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])
COLUMNS = "campaign, recipient_id, name, email, company, subject, body, created_at"


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


def insert_emails(owners: owner_data.OwnerStore, owner: Any, rows: list[tuple[str, ...]]) -> None:
    owners.provision(owner.pk)
    values = [
        ("spring", rid, name, f"{rid}@x.example", "Co", subject, "Hello")
        for rid, name, subject in rows
    ]
    if isinstance(owners, owner_data.SqliteOwners):
        with sqlite3.connect(owners.path(owner.pk)) as conn:
            conn.executemany(
                f"INSERT INTO personalised_emails ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, '2026-01-01 00:00:00')",  # noqa: S608 - fixed columns
                values,
            )
        return
    with connections["data"].cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO owner_{owner.pk}.personalised_emails ({COLUMNS})"  # noqa: S608 - an integer id
            " VALUES (%s, %s, %s, %s, %s, %s, %s, now())",
            values,
        )


def get(user: Any, path: str) -> Any:
    client = Client()
    client.force_login(user)
    return client.get(path)


def exported(user: Any, query: str = "") -> list[dict[str, str]]:
    response = get(user, f"/admin/leads/personalisedemail/export.csv{query}")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_holds_every_page_of_the_viewers_own_rows(
    owners: owner_data.OwnerStore, django_user_model: Any
) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123", is_staff=True)
    bob = django_user_model.objects.create_user("bob", password="pw-bob-123", is_staff=True)
    many = EXPORT_CHUNK * 2 + 7  # more than one chunk, and a partial last one
    insert_emails(owners, alice, [(f"a{i:04d}", f"Alice {i}", f"Hi {i}") for i in range(many)])
    insert_emails(owners, bob, [("b1", "Bob", '=HYPERLINK("http://evil.example")')])

    rows = exported(alice)
    assert [r["recipient_id"] for r in rows] == [f"a{i:04d}" for i in range(many)]
    assert set(rows[0]) == set(COLUMNS.split(", "))  # every column, no owner for a plain user
    assert rows[0]["subject"] == "Hi 0" and rows[0]["email"] == "a0000@x.example"

    [bobs] = exported(bob)
    assert bobs["subject"] == '\'=HYPERLINK("http://evil.example")'  # never run as a formula
    assert [r["recipient_id"] for r in exported(alice, "?q=Alice%2012")] == [
        f"a{i:04d}" for i in range(many) if f"Alice {i}".startswith("Alice 12")
    ]

    listing = get(alice, "/admin/leads/personalisedemail/").content.decode()
    assert f"{many} personalised emails" in listing and 'id="export-csv"' in listing
    assert "Bob" not in listing


def test_a_superuser_exports_everyones_rows_with_the_owner(
    owners: owner_data.OwnerStore, django_user_model: Any
) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123", is_staff=True)
    bob = django_user_model.objects.create_user("bob", password="pw-bob-123", is_staff=True)
    root = django_user_model.objects.create_superuser("root", password="pw-root-123")
    insert_emails(owners, alice, [("a1", "Alice", "Hi")])
    insert_emails(owners, bob, [("b1", "Bob", "Yo")])
    rows = exported(root)
    assert [(r["owner"], r["recipient_id"]) for r in rows] == [("alice", "a1"), ("bob", "b1")]
    assert [r["owner"] for r in exported(root, f"?owner={bob.pk}")] == ["bob"]


def test_the_image_descriptions_are_listed_and_nobody_who_is_not_staff_exports(
    owners: owner_data.OwnerStore, django_user_model: Any
) -> None:
    staff = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    owners.provision(staff.pk)
    page = get(staff, "/admin/leads/imagedescription/")
    assert page.status_code == 200 and "0 image descriptions" in page.content.decode()
    assert get(staff, "/admin/leads/imagedescription/export.csv").status_code == 200
    plain = django_user_model.objects.create_user("plain", password="pw-plain-123")
    assert get(plain, "/admin/leads/personalisedemail/export.csv").status_code == 302
