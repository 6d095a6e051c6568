"""References inside SQL become bound parameters, never spliced text.

The brief's `'<lead.name>'` (a reference inside quotes) binds the value as text, exactly what
the quoted literal meant; a bare `<ref>` binds the value with its JSON type. A string literal
that mixes text and references binds the whole rendered text as one parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from engine.core.refs import (
    REF_PATTERN,
    Scope,
    find_references,
    stringify,
    whole_reference,
)

Dialect = Literal["postgresql", "sqlite"]


class SqlTemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Piece:
    kind: Literal["sql", "literal", "ref", "end"]
    text: str


@lru_cache(maxsize=256)
def tokenize(sql: str) -> tuple[Piece, ...]:
    """Split SQL into plain text, string literals, bare references and statement ends.

    Cached: a loop runs the same template for every item."""
    pieces: list[Piece] = []
    plain: list[str] = []
    i, n = 0, len(sql)

    def flush() -> None:
        if plain:
            pieces.append(Piece("sql", "".join(plain)))
            plain.clear()

    while i < n:
        ch = sql[i]
        if ch == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and j + 1 < n and sql[j + 1] == "'":
                    j += 2
                elif sql[j] == "'":
                    break
                else:
                    j += 1
            if j >= n:
                raise SqlTemplateError("unterminated string literal")
            flush()
            pieces.append(Piece("literal", sql[i + 1 : j].replace("''", "'")))
            i = j + 1
        elif ch == '"':
            j = sql.find('"', i + 1)
            if j < 0:
                raise SqlTemplateError("unterminated quoted identifier")
            if find_references(sql[i:j]):
                raise SqlTemplateError("a reference cannot name a table or column")
            plain.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            plain.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise SqlTemplateError("unterminated comment")
            plain.append(sql[i : j + 2])
            i = j + 2
        elif ch == "$" and (match := _dollar_tag(sql, i)):
            end = sql.find(match, i + len(match))
            if end < 0:
                raise SqlTemplateError("unterminated dollar-quoted string")
            if find_references(sql[i:end]):
                raise SqlTemplateError("references inside dollar-quoted strings are not supported")
            plain.append(sql[i : end + len(match)])
            i = end + len(match)
        elif ch == "<" and (ref := REF_PATTERN.match(sql, i)):
            flush()
            pieces.append(Piece("ref", ref.group(0)))
            i = ref.end()
        elif ch == ";":
            flush()
            pieces.append(Piece("end", ";"))
            i += 1
        else:
            plain.append(ch)
            i += 1
    flush()
    return tuple(pieces)


def _dollar_tag(sql: str, i: int) -> str | None:
    j = sql.find("$", i + 1)
    if j < 0:
        return None
    tag = sql[i : j + 1]
    inner = tag[1:-1]
    return (
        tag if inner == "" or inner.replace("_", "a").isalnum() and not inner[0].isdigit() else None
    )


def check_sql(sql: str) -> list[str]:
    """Problems with an SQL template, for validation (empty when fine)."""
    try:
        pieces = tokenize(sql)
    except SqlTemplateError as exc:
        return [str(exc)]
    seen_end = False
    for piece in pieces:
        if piece.kind == "end":
            seen_end = True
        elif seen_end and (piece.kind != "sql" or _strip_comments(piece.text).strip()):
            return ["one statement per block: remove the text after ';'"]
    if not any(p.kind != "end" and (p.kind != "sql" or p.text.strip()) for p in pieces):
        return ["the SQL is empty"]
    return []


def _strip_comments(text: str) -> str:
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return "\n".join(lines)


def compile_sql(sql: str, scope: Scope, dialect: Dialect) -> tuple[str, list[Any]]:
    """SQL text with placeholders, and the parameters to bind, in order."""
    placeholder = "%s" if dialect == "postgresql" else "?"
    out: list[str] = []
    params: list[Any] = []
    for piece in tokenize(sql):
        if piece.kind == "sql":
            out.append(_escape(piece.text, dialect))
        elif piece.kind == "end":
            continue
        elif piece.kind == "ref":
            ref = whole_reference(piece.text)
            if ref is None:  # the tokenizer only marks whole references as "ref"
                raise AssertionError(f"not a reference: {piece.text!r}")
            params.append(_bare_value(scope.resolve(ref)))
            out.append(placeholder)
        elif find_references(piece.text):
            params.append(_literal_value(piece.text, scope))
            out.append(placeholder)
        else:
            out.append(_escape("'" + piece.text.replace("'", "''") + "'", dialect))
    return "".join(out).strip(), params


def _escape(text: str, dialect: Dialect) -> str:
    # psycopg reads every % as a placeholder marker, even inside literals.
    return text.replace("%", "%%") if dialect == "postgresql" else text


def _bare_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return stringify(value)
    return value


def _literal_value(text: str, scope: Scope) -> Any:
    whole = whole_reference(text)
    if whole is not None and text == whole.text:
        value = scope.resolve(whole)
        return None if value is None else stringify(value)
    return REF_PATTERN.sub(lambda m: stringify(scope.resolve(whole_reference(m.group(0)))), text)  # type: ignore[arg-type]
