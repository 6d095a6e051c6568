"""Finding 9, the tokenizer half (issue 7): `SELECT E'\\''; DELETE FROM enriched_leads ...; --'`
passed the one-statement check on PostgreSQL (the tokenizer did not know E'' strings) and both
statements ran. The tokenizer now reads every PostgreSQL literal form, per dialect; PostgreSQL's
own scanner re-counts the statements; the run-time compile checks again; and both drivers
refuse a second statement whatever the template checks said."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.core.data import PostgresData, SqliteData
from engine.core.refs import Scope
from engine.core.sqlrefs import SqlTemplateError, check_sql, compile_sql, tokenize

ESCAPE_STRING_ATTACK = "SELECT E'\\''; DELETE FROM enriched_leads WHERE lead_id <> ''; --'"

# Statements a tokenizer that misreads one literal form takes for one, though the database
# (of the dialect named) runs two.
HIDDEN_SECOND_STATEMENTS = [
    ("postgresql", ESCAPE_STRING_ATTACK),
    ("postgresql", "SELECT e'\\\\\\''; DELETE FROM enriched_leads; --'"),
    ("postgresql", "SELECT $x$ $$ $x$; DELETE FROM enriched_leads; -- $$"),
    ("postgresql", 'SELECT "a"""; DELETE FROM enriched_leads; --"'),
    ("postgresql", "SELECT U&'\\'; DELETE FROM enriched_leads; --'"),
    ("sqlite", "SELECT 1 /* /* */ ; DELETE FROM enriched_leads; /* */"),
    ("sqlite", "SELECT `a'`; DELETE FROM enriched_leads; --'"),
    ("sqlite", "SELECT [a'] ; DELETE FROM enriched_leads; --'"),
    ("sqlite", "SELECT '\\'; DELETE FROM enriched_leads; --'"),
]


@pytest.mark.parametrize(("dialect", "sql"), HIDDEN_SECOND_STATEMENTS)
def test_hostile_sql_a_second_statement_hidden_in_a_literal_is_refused(
    dialect: Any, sql: str
) -> None:
    problems = check_sql(sql, dialect)
    assert problems and "one statement per block" in problems[0], (sql, problems)
    assert check_sql(sql)  # the editor, which checks every dialect, refuses it too
    with pytest.raises(SqlTemplateError, match="one statement per block"):
        compile_sql(sql, Scope(), dialect)  # and so does the run, validated or not


# One statement each, in PostgreSQL: every literal form, with ';' and quotes inside.
POSTGRES_ONE_STATEMENT = [
    "SELECT E'it\\'s; here' AS a",
    "SELECT E'back\\\\slash' AS a, 'plain\\' AS b",
    "SELECT U&'d\\0061t\\+000061;' AS a",
    "SELECT U&'d!0061t;' UESCAPE '!' AS a",
    'SELECT 1 AS U&"d\\0061t;"',
    "SELECT $$ ; ' $$ AS a",
    "SELECT $tag$ ; $$ ' $tag$ AS a",
    "SELECT 1 /* a /* nested ; */ still ; */ AS a",
    'SELECT 1 AS "semi;""colon"',
    "SELECT 'it''s; fine' AS a",
    "SELECT a$b$ FROM (SELECT 1 AS a$b$) t",
]


@pytest.mark.parametrize("sql", POSTGRES_ONE_STATEMENT)
def test_hostile_sql_every_postgresql_literal_form_is_one_statement(sql: str) -> None:
    assert check_sql(sql, "postgresql") == []
    compiled, params = compile_sql(sql, Scope(), "postgresql")
    assert params == [] and compiled == sql.replace("%", "%%")


def test_hostile_sql_references_only_bind_in_plain_literals() -> None:
    scope = Scope({"lead": {"name": "x'; DROP TABLE t; --"}})
    sql, params = compile_sql("SELECT E'\\'x', '<lead.name>'", scope, "postgresql")
    assert sql == "SELECT E'\\'x', %s" and params == ["x'; DROP TABLE t; --"]
    for form in ["E'<lead.name>'", "U&'<lead.name>'", "$q$<lead.name>$q$"]:
        assert "not supported" in check_sql(f"SELECT {form}", "postgresql")[0]
    assert tokenize("SELECT E'<lead.name>'", "sqlite")[1].kind == "literal"  # SQLite: no E''


def test_hostile_sql_nul_characters_are_refused() -> None:
    assert "NUL" in check_sql("SELECT 1\x00; DELETE FROM enriched_leads")[0]


async def test_hostile_sql_sqlite_refuses_a_second_statement_itself(tmp_path: Path) -> None:
    data = SqliteData(str(tmp_path / "data.sqlite3"))
    try:
        with pytest.raises(sqlite3.ProgrammingError, match="one statement"):
            await data.execute("SELECT 1; SELECT 2", [])
    finally:
        await data.aclose()


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_hostile_sql_postgresql_refuses_a_second_statement_itself(
    django_user_model: Any,
) -> None:
    """Whatever the template checks said, PostgreSQL runs one command per block statement,
    and a block cannot change how the next one's strings are read."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from engine.config import data_connection

    def owner_connection() -> Any:
        try:
            owner = django_user_model.objects.create_user("sql-tokenizer")
            return data_connection(owner.pk)  # provisions the owner's schema and role
        finally:
            connections.close_all()

    configured = await sync_to_async(owner_connection)()
    assert isinstance(configured, PostgresData)
    data = PostgresData(configured._conninfo, max_size=1)
    try:
        with pytest.raises(Exception, match="cannot insert multiple commands"):
            await data.execute("SELECT 1; DELETE FROM enriched_leads", [])
        await data.execute("SET standard_conforming_strings = off", [])
        shown = await data.execute("SHOW standard_conforming_strings", [])
        assert shown["rows"] == [{"standard_conforming_strings": "on"}]
        assert (await data.execute("SELECT 'a\\' AS s", []))["rows"] == [{"s": "a\\"}]
    finally:
        await data.aclose()
