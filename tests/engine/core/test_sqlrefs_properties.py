"""Property tests of the SQL compiler (issue 7, item 3): for any item data, the SQL text sent
to the driver is the template's compiled text — the same whatever the data — and every value
arrives as a bound parameter, which the database hands back unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.data import SqliteData, json_safe
from engine.core.refs import MissingReference, Scope, stringify
from engine.core.sqlrefs import Dialect, SqlTemplateError, compile_sql

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# Text that tries everything: quotes, statement ends, comments, placeholders of both drivers,
# dollar quotes, backslashes and reference syntax (naming a value that does exist).
def text_of(tokens: list[str], max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=max_size).map("".join)


HOSTILE_TEXT = text_of(list("ab '\";-/*%s?$1\\<>.E&[]`\n") + ["<secret.key>", "é", "🙂"], 20)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | HOSTILE_TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=6,
)
FIELDS = ("a", "b", "c")
ITEMS = st.fixed_dictionaries({field: VALUES for field in FIELDS})
SECRET = "never-spliced-secret-9f1c"


def scope_of(item: dict[str, Any]) -> Scope:
    return Scope({"item": item, "secret": {"key": SECRET}})


# --- templates whose expected compilation is known piece by piece --------------------------

Expected = Callable[[dict[str, Any]], Any]  # the parameter a piece binds, from the item


@dataclass(frozen=True)
class Part:
    template: str  # the piece as written in the template
    compiled: str | None  # its text in the compiled SQL; None for a placeholder
    param: Expected | None = None  # the parameter it binds
    column: Expected | None = None  # what the database returns for it, as a column


def bare(field: str) -> Part:
    def value(item: dict[str, Any]) -> Any:
        v = item[field]
        return stringify(v) if isinstance(v, dict | list) else v

    return Part(f"<item.{field}>", None, value, value)


def quoted(field: str) -> Part:
    def value(item: dict[str, Any]) -> Any:
        return None if item[field] is None else stringify(item[field])

    return Part(f"'<item.{field}>'", None, value, value)


def mixed(prefix: str, field: str, suffix: str) -> Part:
    if not prefix and not suffix:
        return quoted(field)

    def value(item: dict[str, Any]) -> Any:
        return prefix.replace("''", "'") + stringify(item[field]) + suffix.replace("''", "'")

    return Part(f"'{prefix}<item.{field}>{suffix}'", None, value, value)


def constant(text: str) -> Part:
    literal = "'" + text.replace("'", "''") + "'"
    return Part(literal, literal, None, lambda _: text)


def sql_expression(text: str, result: Any) -> Part:
    return Part(text, text, None, lambda _: result)


LITERAL_TEXT = st.text(alphabet=st.sampled_from(list('ab ;-/*%?$\\"E&`')), max_size=8)
LITERAL_AFFIX = LITERAL_TEXT.map(lambda t: t.replace("'", "''"))
FIELD = st.sampled_from(FIELDS)
EXPRESSIONS = st.one_of(
    FIELD.map(bare),
    FIELD.map(quoted),
    st.builds(mixed, LITERAL_AFFIX, FIELD, LITERAL_AFFIX),
    LITERAL_TEXT.map(constant),
    st.sampled_from([("1", 1), ("NULL", None), ("2 + 3", 5), ("'it''s'", "it's")]).map(
        lambda pair: sql_expression(*pair)
    ),
)
COMMENTS = st.sampled_from(["", " /* <item.a> ; ' */", " -- <item.b> ; '\n"])


@st.composite
def select_templates(draw: st.DrawFn) -> list[Part]:
    """`SELECT e0 AS c0, e1 AS c1 ...` with comments between: valid SQL in both dialects."""
    parts = [Part("SELECT ", "SELECT ")]
    for index, expression in enumerate(draw(st.lists(EXPRESSIONS, min_size=1, max_size=5))):
        if index:
            parts.append(Part(", ", ", "))
        comment = draw(COMMENTS)
        parts += [expression, Part(f"{comment} AS c{index}", f"{comment} AS c{index}")]
    return parts


def expected_row(parts: list[Part], item: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    columns = [p.column(item) for p in parts if p.column is not None]
    return {f"c{i}": returned(value, dialect) for i, value in enumerate(columns)}


def returned(value: Any, dialect: Dialect) -> Any:
    """What a bound value reads back as: JSON-safe, booleans as SQLite stores them."""
    if dialect == "sqlite" and isinstance(value, bool):
        return int(value)
    return json_safe(value)


def expected_sql(parts: list[Part], dialect: Dialect) -> str:
    placeholder = "%s" if dialect == "postgresql" else "?"
    escape: Callable[[str], str] = (
        (lambda t: t.replace("%", "%%")) if dialect == "postgresql" else (lambda t: t)
    )
    return "".join(placeholder if p.compiled is None else escape(p.compiled) for p in parts).strip()


def expected_params(parts: list[Part], item: dict[str, Any]) -> list[Any]:
    return [p.param(item) for p in parts if p.param is not None]


# --- the compiler ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    parts=select_templates(),
    item=ITEMS,
    other=ITEMS,
    dialect=st.sampled_from(["postgresql", "sqlite"]),
)
def test_the_sql_text_is_the_templates_and_every_value_is_a_parameter(
    parts: list[Part], item: dict[str, Any], other: dict[str, Any], dialect: Dialect
) -> None:
    template = "".join(p.template for p in parts)
    sql, params = compile_sql(template, scope_of(item), dialect)
    assert sql == expected_sql(parts, dialect)
    assert params == expected_params(parts, item)
    assert compile_sql(template, scope_of(other), dialect)[0] == sql  # data never shapes SQL
    assert all(SECRET not in str(p) for p in params)  # reference syntax in data stays text


TEMPLATE_TEXT = text_of(
    list("SELECT ab'\";-/*%?$\\E&U[]`()\n ") + ["<item.a>", "<item.b.0>", "$q$", "/*", "*/"], 40
)


@PROPERTY_SETTINGS
@given(template=TEMPLATE_TEXT, item=ITEMS, dialect=st.sampled_from(["postgresql", "sqlite"]))
def test_any_template_compiles_or_fails_with_a_reason(
    template: str, item: dict[str, Any], dialect: Dialect
) -> None:
    """Arbitrary text never crashes the compiler: it compiles, or fails with a message for the
    user (a template problem, or a reference the item does not have)."""
    try:
        sql, params = compile_sql(template, scope_of(item), dialect)
    except (SqlTemplateError, MissingReference):
        return
    placeholder = "%s" if dialect == "postgresql" else "?"
    assert sql.count(placeholder) >= len(params)
    assert SECRET not in sql and all(SECRET not in str(p) for p in params)


# --- through the drivers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, SqliteData]]:
    data = SqliteData(str(tmp_path_factory.mktemp("props") / "data.sqlite3"))
    with asyncio.Runner() as runner:
        yield runner, data
        runner.run(data.aclose())


@PROPERTY_SETTINGS
@given(parts=select_templates(), item=ITEMS)
def test_sqlite_returns_every_bound_value_unchanged(
    sqlite_data: tuple[Any, SqliteData], parts: list[Part], item: dict[str, Any]
) -> None:
    runner, data = sqlite_data
    sql, params = compile_sql("".join(p.template for p in parts), scope_of(item), "sqlite")
    rows = runner.run(data.execute(sql, params))["rows"]
    assert rows == [expected_row(parts, item, "sqlite")], (sql, params)


@pytest.fixture(scope="module")
def postgres(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Any]:
    """A connection as the workflow role, executing the way `PostgresData` does."""
    import psycopg
    from django.db import connections

    from engine.config import data_connection
    from engine.core.data import PostgresData

    with django_db_blocker.unblock():
        try:
            configured = data_connection(990_002)  # provisions an owner of its own
        finally:
            connections.close_all()
    assert isinstance(configured, PostgresData)
    with psycopg.connect(configured._conninfo, autocommit=True) as conn:
        yield conn


@pytest.mark.django_db(databases=["default", "data"])
@PROPERTY_SETTINGS
@given(parts=select_templates(), item=ITEMS)
def test_postgresql_returns_every_bound_value_unchanged(
    postgres: Any, parts: list[Part], item: dict[str, Any]
) -> None:
    sql, params = compile_sql("".join(p.template for p in parts), scope_of(item), "postgresql")
    cursor = postgres.execute(sql, params, prepare=True)
    columns = [c.name for c in cursor.description]
    rows = [{c: json_safe(v) for c, v in zip(columns, r, strict=True)} for r in cursor.fetchall()]
    assert rows == [expected_row(parts, item, "postgresql")], (sql, params)
