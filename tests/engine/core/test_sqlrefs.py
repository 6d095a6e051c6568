from pathlib import Path

import pytest

from engine.core.refs import Scope
from engine.core.sqlrefs import check_sql, compile_sql

BRIEF_SQL = """INSERT INTO enriched_leads (lead_id, name, company_size, qualification_score, enriched_at)
VALUES ('<lead.id>', '<lead.name>', '<http_clearbit.body.metrics.employees>',
'<agent_analysis.qualification_score>', NOW())"""


def scope() -> Scope:
    return Scope(
        {
            "lead": {
                "id": "l-1",
                "name": "x'); DROP TABLE enriched_leads;--",
                "tags": ["a"],
                "n": None,
            },
            "http_clearbit": {"body": {"metrics": {"employees": 42}}},
            "agent_analysis": {"qualification_score": 7},
        }
    )


def test_quoted_references_become_bound_text_parameters() -> None:
    sql, params = compile_sql(BRIEF_SQL, scope(), "postgresql")
    assert "DROP" not in sql and "'" not in sql
    assert sql.count("%s") == 4
    assert params == ["l-1", "x'); DROP TABLE enriched_leads;--", "42", "7"]


def test_sqlite_placeholders_and_bare_references_keep_type() -> None:
    sql, params = compile_sql(
        "SELECT <lead.n>, <lead.tags>, <agent_analysis.qualification_score>", scope(), "sqlite"
    )
    assert sql == "SELECT ?, ?, ?"
    assert params == [None, '["a"]', 7]


def test_mixed_literal_binds_whole_text_and_percent_is_escaped_for_psycopg() -> None:
    sql, params = compile_sql(
        "SELECT 'Hi <lead.id>!' LIKE '10%' -- <not.a.ref>", scope(), "postgresql"
    )
    assert sql == "SELECT %s LIKE '10%%' -- <not.a.ref>"
    assert params == ["Hi l-1!"]


def test_quoted_null_becomes_sql_null() -> None:
    assert compile_sql("SELECT '<lead.n>'", scope(), "sqlite")[1] == [None]


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("DELETE FROM t; DROP TABLE t", "one statement per block"),
        ("SELECT 1;\n -- trailing comment only\n", None),
        ("SELECT 'unterminated", "unterminated string literal"),
        ('SELECT * FROM "<lead.table>"', "cannot name a table or column"),
        ("  ", "the SQL is empty"),
        ("SELECT ';' AS semi", None),
    ],
)
def test_check_sql(sql: str, problem: str | None) -> None:
    problems = check_sql(sql)
    if problem is None:
        assert problems == []
    else:
        assert problems and problem in problems[0]


def test_template_sql_is_the_brief_verbatim_plus_upsert() -> None:
    import json

    template = json.loads(Path("builder/gallery/parallel-lead-enrichment.json").read_text())
    sql = next(b for b in template["graph"]["blocks"] if b["type"] == "database")["config"]["sql"]
    assert "'<lead.name>',\n'<lead.company>'" in sql
    assert (
        sql.rstrip().startswith("INSERT INTO enriched_leads (")
        and "ON CONFLICT (lead_id) DO UPDATE" in sql
    )
    assert check_sql(sql) == []


def test_a_template_is_worked_out_once_and_each_scope_binds_its_own_values() -> None:
    # A loop compiles the same template for every item: only the values are resolved again.
    from engine.core.sqlrefs import _plan

    template = "SELECT '<lead.id>', 'id <lead.id>!', <lead.tags>, '<lead.n>' -- <lead.id>"
    first = compile_sql(template, scope(), "postgresql")
    before = _plan.cache_info()
    other = Scope({"lead": {"id": "l-2", "tags": {"k": 1}, "n": 3}})
    second = compile_sql(template, other, "postgresql")
    after = _plan.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
    assert first == ("SELECT %s, %s, %s, %s -- <lead.id>", ["l-1", "id l-1!", '["a"]', None])
    assert second == ("SELECT %s, %s, %s, %s -- <lead.id>", ["l-2", "id l-2!", '{"k": 1}', "3"])
