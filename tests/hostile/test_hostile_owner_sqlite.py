"""Finding 3 on SQLite (the `make run` default): each owner's database blocks open that
owner's own file, under an authorizer that refuses ATTACH and every kind of DDL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leads import owner_data
from tests.engine.conftest import simulator  # noqa: F401 - fixture
from tests.hostile.owner_kit import admin_list, leads, make_owner, run_sql, run_template, table_of
from tests.leads.rows import owner_rows

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


@pytest.fixture
def sqlite_owners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> owner_data.SqliteOwners:
    """Owner data on SQLite files, as `make run` has it (the suite's data database is
    PostgreSQL; `tests/e2e` covers the store `make run` itself selects)."""
    owners = owner_data.SqliteOwners(tmp_path / "owners")
    monkeypatch.setattr(owner_data, "store", lambda: owners)
    return owners


@pytest.mark.usefixtures("simulator")
def test_another_owners_database_block_sees_and_changes_none_of_their_rows(
    sqlite_owners: owner_data.SqliteOwners,
    django_user_model: Any,
) -> None:
    alice = make_owner(django_user_model, "alice")
    bob = make_owner(django_user_model, "bob")
    assert run_template(alice, {"leads": leads(5, "A")}).status == "succeeded"
    before = owner_rows(alice)
    assert len(before) == 5
    listed = table_of(admin_list(alice))
    assert "A Person 0" in listed

    seen = run_sql(bob, "SELECT * FROM enriched_leads")
    assert seen.status == "succeeded" and seen.outputs["q"]["rows"] == []
    for sql in ["UPDATE enriched_leads SET name = 'pwned'", "DELETE FROM enriched_leads"]:
        run = run_sql(bob, sql)
        assert run.status == "succeeded" and run.outputs["q"]["rowcount"] == 0, sql
    for sql in [
        f"ATTACH DATABASE '{sqlite_owners.path(alice.pk)}' AS a",
        "CREATE TEMP TABLE enriched_leads (lead_id text)",
        "CREATE TABLE stolen (x)",
        f"VACUUM INTO '{sqlite_owners.directory}/copy.sqlite3'",
    ]:
        run = run_sql(bob, sql)
        assert run.status == "failed" and "authoriz" in run.error, (sql, run.error)

    assert sqlite_owners.owner_ids() == sorted([alice.pk, bob.pk])
    assert owner_rows(alice) == before
    assert table_of(admin_list(alice)) == listed
    assert "A Person" not in table_of(admin_list(bob))
    again = run_template(alice, {"leads": leads(5, "A")})
    assert again.status == "succeeded" and len(owner_rows(alice)) == 5
