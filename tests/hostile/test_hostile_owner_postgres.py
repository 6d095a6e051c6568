"""Finding 3 and the role half of finding 9, on PostgreSQL: a workflow's database block sees
its owner's schema only, as a role that cannot create anything (not even temporary tables),
read the cluster's catalogs or touch the data database's bookkeeping."""

# ruff: noqa: S608 - hostile SQL aimed at another owner's schema is the input of these tests

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.conftest import simulator  # noqa: F401 - fixture
from tests.hostile.owner_kit import admin_list, leads, make_owner, run_sql, run_template, table_of
from tests.leads.rows import owner_rows

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return make_owner(django_user_model, "alice")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return make_owner(django_user_model, "bob")


@pytest.mark.usefixtures("simulator")
def test_another_owners_database_block_sees_and_changes_none_of_their_rows(
    alice: Any,
    bob: Any,
) -> None:
    assert run_template(alice, {"leads": leads(5, "A")}).status == "succeeded"
    before = owner_rows(alice)
    assert len(before) == 5
    listed = table_of(admin_list(alice))
    assert "A Person 0" in listed

    seen = run_sql(bob, "SELECT * FROM enriched_leads")
    assert seen.status == "succeeded" and seen.outputs["q"]["rows"] == []
    for sql in [
        "UPDATE enriched_leads SET name = 'pwned'",
        "DELETE FROM enriched_leads",
    ]:
        run = run_sql(bob, sql)
        assert run.status == "succeeded" and run.outputs["q"]["rowcount"] == 0, sql
    table = f"owner_{alice.pk}.enriched_leads"
    for sql in [  # hostile SQL is the input here
        "SELECT * FROM " + table,
        "UPDATE " + table + " SET name = 'pwned'",
        "DELETE FROM " + table,
        "INSERT INTO " + table + " (lead_id, name, enriched_at) VALUES ('x', 'x', now())",
    ]:
        run = run_sql(bob, sql)
        assert run.status == "failed" and "permission denied for schema" in run.error, sql

    assert owner_rows(alice) == before
    assert table_of(admin_list(alice)) == listed
    assert "A Person" not in table_of(admin_list(bob))
    again = run_template(alice, {"leads": leads(5, "A")})
    assert again.status == "succeeded" and len(owner_rows(alice)) == 5


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TEMP TABLE enriched_leads (lead_id text)",
        "CREATE TEMPORARY VIEW v AS SELECT 1 AS one",
        "CREATE TABLE stolen (x int)",
        "CREATE VIEW stolen AS SELECT 1 AS one",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA mine",
        "SELECT lo_create(0)",
        "SELECT lo_from_bytea(0, 'x')",
    ],
)
def test_a_workflow_cannot_create_even_temporary_objects(alice: Any, sql: str) -> None:
    run = run_sql(alice, sql)
    assert run.status == "failed" and "permission denied" in run.error, (sql, run.error)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT datname FROM pg_database",
        "SELECT rolname FROM pg_roles",
        "SELECT usename FROM pg_user",
        "SELECT * FROM pg_auth_members",
        "SELECT * FROM pg_db_role_setting",
        "SELECT datname, usename FROM pg_stat_activity",
        "SELECT * FROM pg_stat_get_activity(NULL)",
        "SELECT datname FROM pg_stat_database",
        "SELECT * FROM pg_tablespace",
        "SELECT * FROM public.django_migrations",
        "INSERT INTO public.django_migrations (app, name, applied) VALUES ('x', 'y', now())",
        "DELETE FROM public.django_migrations",
        "SELECT * FROM public.django_content_type",
    ],
)
def test_a_workflow_cannot_read_the_cluster_or_the_bookkeeping(alice: Any, sql: str) -> None:
    run = run_sql(alice, sql)
    assert run.status == "failed" and "permission denied" in run.error, (sql, run.error)


def test_the_role_check_view_shows_the_callers_own_row_only(alice: Any, bob: Any) -> None:
    run_sql(bob, "SELECT 1")  # bob's role exists too
    run = run_sql(alice, "SELECT rolname FROM klyntos_meta.role_attributes")
    assert run.status == "succeeded"
    assert [row["rolname"] for row in run.outputs["q"]["rows"]] == [
        run_sql(alice, "SELECT current_user AS u").outputs["q"]["rows"][0]["u"]
    ]
