"""References inside SQL become bound parameters, never spliced text.

The brief's `'<lead.name>'` (a reference inside quotes) binds the value as text, exactly what
the quoted literal meant; a bare `<ref>` binds the value with its JSON type. A string literal
that mixes text and references binds the whole rendered text as one parameter.

The tokenizer reads SQL the way the database's own lexer does, per dialect: PostgreSQL's
escape strings (`E'\\''`), Unicode strings (`U&'...'`), dollar quotes with tags and nested
`/* */` comments; SQLite's `[...]` and backtick identifiers (and no escapes, no dollar quotes,
no nesting). Misreading a literal's end is how a second statement hides inside the first
(`SELECT E'\\''; DELETE ...; --'`), so on PostgreSQL the statement count is checked again by
PostgreSQL's own scanner (pglast), and the drivers refuse a second statement anyway
(psycopg's prepared statements, sqlite3's one-statement `execute`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

# PostgreSQL's own scanner (libpg_query). Imported with the module, not by the first
# statement a run sends (~40 ms on the event loop, in the middle of a loop's first items).
import pglast

from engine.core.refs import (
    REF_PATTERN,
    Reference,
    Scope,
    find_references,
    stringify,
    substitute,
    whole_reference,
)

Dialect = Literal["postgresql", "sqlite"]
DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")


class SqlTemplateError(ValueError):
    pass


PieceKind = Literal["sql", "comment", "literal", "constant", "ref", "end"]


@dataclass(frozen=True, slots=True)
class Piece:
    """One lexical piece of a template.

    `literal` is a standard '...' string (`text` its value, references allowed); `constant`
    any other string form (E'', U&'', dollar quotes), kept verbatim, references refused.
    `text` of every other kind is the source text."""

    kind: PieceKind
    text: str
    raw: str = ""


# Identifier characters: both lexers take any non-ASCII character as a letter, and `$` after
# the first character.
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_NUMBER = re.compile(r"[0-9][A-Za-z0-9_.$\x80-\U0010ffff]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")


def _standard_string(sql: str, start: int) -> int:
    """End (exclusive) of a '...' string starting at `start`: '' is a quote, no escapes."""
    i, n = start + 1, len(sql)
    while i < n:
        if sql[i] == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlTemplateError("unterminated string literal")


def _escape_string(sql: str, start: int) -> int:
    """End of PostgreSQL's E'...' string: a backslash escapes the next character."""
    i, n = start + 1, len(sql)
    while i < n:
        if sql[i] == "\\":
            i += 2
        elif sql[i] == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
                continue
            return i + 1
        else:
            i += 1
    raise SqlTemplateError("unterminated string literal")


def _quoted(sql: str, start: int, close: str, what: str) -> int:
    """End of an identifier quoted with `close` (doubled inside to mean itself)."""
    i, n = start + 1, len(sql)
    while i < n:
        if sql[i] == close:
            if close != "]" and i + 1 < n and sql[i + 1] == close:
                i += 2
                continue
            return i + 1
        i += 1
    raise SqlTemplateError(f"unterminated {what}")


def _block_comment(sql: str, start: int, nested: bool) -> int:
    depth, i, n = 1, start + 2, len(sql)
    while i < n:
        if nested and sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlTemplateError("unterminated comment")


def _no_references(text: str, message: str) -> None:
    if find_references(text):
        raise SqlTemplateError(message)


@lru_cache(maxsize=512)
def tokenize(sql: str, dialect: Dialect = "postgresql") -> tuple[Piece, ...]:
    """Split SQL into code, comments, string literals, bare references and statement ends.

    Cached: a loop runs the same template for every item."""
    postgres = dialect == "postgresql"
    pieces: list[Piece] = []
    plain: list[str] = []
    i, n = 0, len(sql)

    def flush() -> None:
        if plain:
            pieces.append(Piece("sql", "".join(plain)))
            plain.clear()

    def emit(kind: PieceKind, text: str, raw: str = "") -> None:
        flush()
        pieces.append(Piece(kind, text, raw))

    while i < n:
        ch = sql[i]
        if ch == "'":
            end = _standard_string(sql, i)
            emit("literal", sql[i + 1 : end - 1].replace("''", "'"), sql[i:end])
            i = end
        elif ch == '"' or (not postgres and ch == "`"):
            end = _quoted(sql, i, ch, "quoted identifier")
            _no_references(sql[i:end], "a reference cannot name a table or column")
            plain.append(sql[i:end])
            i = end
        elif ch == "[" and not postgres:
            end = _quoted(sql, i, "]", "quoted identifier")
            _no_references(sql[i:end], "a reference cannot name a table or column")
            plain.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            emit("comment", sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = _block_comment(sql, i, nested=postgres)
            emit("comment", sql[i:end])
            i = end
        elif word := _WORD.match(sql, i):
            i = _word(sql, word, postgres, plain, emit)
        elif number := _NUMBER.match(sql, i):
            plain.append(number.group(0))
            i = number.end()
        elif postgres and (tag := _DOLLAR_TAG.match(sql, i)):
            close = sql.find(tag.group(0), tag.end())
            if close < 0:
                raise SqlTemplateError("unterminated dollar-quoted string")
            end = close + len(tag.group(0))
            _no_references(sql[i:end], "references inside dollar-quoted strings are not supported")
            emit("constant", sql[i:end])
            i = end
        elif ch == "<" and (ref := REF_PATTERN.match(sql, i)):
            emit("ref", ref.group(0))
            i = ref.end()
        elif ch == ";":
            emit("end", ";")
            i += 1
        else:
            plain.append(ch)
            i += 1
    flush()
    return tuple(pieces)


def _word(sql: str, word: re.Match[str], postgres: bool, plain: list[str], emit: Any) -> int:
    """A keyword or identifier — or, on PostgreSQL, the prefix of E'' and U&'' strings."""
    text, end = word.group(0), word.end()
    if postgres and text in {"E", "e"} and sql.startswith("'", end):
        close = _escape_string(sql, end)
        _no_references(sql[end:close], "references inside E'...' strings are not supported")
        emit("constant", sql[word.start() : close])
        return close
    if postgres and text in {"U", "u"} and sql.startswith("&'", end):
        close = _standard_string(sql, end + 1)
        _no_references(sql[end:close], "references inside U&'...' strings are not supported")
        emit("constant", sql[word.start() : close])
        return close
    if postgres and text in {"U", "u"} and sql.startswith('&"', end):
        close = _quoted(sql, end + 1, '"', "quoted identifier")
        _no_references(sql[end:close], "a reference cannot name a table or column")
        plain.append(sql[word.start() : close])
        return close
    plain.append(text)
    return end


def check_sql(sql: str, dialect: Dialect | None = None) -> list[str]:
    """Problems with an SQL template, for validation (empty when fine).

    Without a dialect (the editor does not know where the block will run) the template must
    read as one statement in every dialect."""
    for each in (dialect,) if dialect else DIALECTS:
        try:
            _check(sql, each)
        except SqlTemplateError as exc:
            return [str(exc)]
    return []


ONE_STATEMENT = "one statement per block: remove the text after ';'"


@lru_cache(maxsize=512)
def _check(sql: str, dialect: Dialect) -> None:
    if "\x00" in sql:  # C-string drivers and scanners would stop reading there
        raise SqlTemplateError("the SQL contains a NUL character")
    pieces = tokenize(sql, dialect)
    seen_end = False
    for piece in pieces:
        if piece.kind == "end":
            seen_end = True
        elif seen_end and piece.kind != "comment" and (piece.kind != "sql" or piece.text.strip()):
            raise SqlTemplateError(ONE_STATEMENT)
    if not any(
        p.kind not in {"end", "comment"} and (p.kind != "sql" or p.text.strip()) for p in pieces
    ):
        raise SqlTemplateError("the SQL is empty")
    if dialect == "postgresql" and _postgres_statement_count(sql) > 1:
        raise SqlTemplateError(ONE_STATEMENT)


def _postgres_statement_count(sql: str) -> int:
    """How many statements PostgreSQL's own scanner (libpg_query, through pglast) sees."""
    try:
        return len(pglast.split(sql, with_parser=False))
    except pglast.Error as exc:
        raise SqlTemplateError(f"PostgreSQL cannot read this SQL: {exc}") from None


def compile_sql(sql: str, scope: Scope, dialect: Dialect) -> tuple[str, list[Any]]:
    """SQL text with placeholders, and the parameters to bind, in order.

    Refuses (SqlTemplateError) a template that is not one statement in this dialect: the
    run-time check does not rely on the template having been validated."""
    text, binders = _plan(sql, dialect)
    return text, [bind(scope, value) for bind, value in binders]


Binder = tuple[Callable[[Scope, Any], Any], Any]


@lru_cache(maxsize=512)
def _plan(sql: str, dialect: Dialect) -> tuple[str, tuple[Binder, ...]]:
    """The SQL text and how to get each parameter from a scope: worked out once per
    template (a loop runs the same one for every item), each item only resolves values."""
    _check(sql, dialect)
    placeholder = "%s" if dialect == "postgresql" else "?"
    out: list[str] = []
    binders: list[Binder] = []
    for piece in tokenize(sql, dialect):
        if piece.kind in {"sql", "comment", "constant"}:
            out.append(_escape(piece.text, dialect))
        elif piece.kind == "end":
            continue
        elif piece.kind == "ref":
            ref = whole_reference(piece.text)
            if ref is None:  # the tokenizer only marks whole references as "ref"
                raise AssertionError(f"not a reference: {piece.text!r}")
            binders.append((_bare_value, ref))
            out.append(placeholder)
        elif find_references(piece.text):
            whole = whole_reference(piece.text)
            if whole is not None and piece.text == whole.text:
                binders.append((_whole_literal_value, whole))
            else:
                binders.append((_literal_value, piece.text))
            out.append(placeholder)
        else:
            out.append(_escape(piece.raw, dialect))
    return "".join(out).strip(), tuple(binders)


def _escape(text: str, dialect: Dialect) -> str:
    # psycopg reads every % as a placeholder marker, even inside literals and comments.
    return text.replace("%", "%%") if dialect == "postgresql" else text


def _bare_value(scope: Scope, ref: Reference) -> Any:
    value = scope.resolve(ref)
    if isinstance(value, dict | list):
        return stringify(value)
    return value


def _whole_literal_value(scope: Scope, ref: Reference) -> Any:
    value = scope.resolve(ref)
    return None if value is None else stringify(value)


def _literal_value(scope: Scope, text: str) -> Any:
    return substitute(text, scope, lambda value, _: stringify(value))
