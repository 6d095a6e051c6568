"""json_fast: ujson's compact text parses to what json writes, refuses what jsonb refuses,
and a redaction scan finds a secret in it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.core.json_fast import compact, strict
from engine.core.redaction import MASK, Redactor

VALUES: list[Any] = [
    {"status": 200, "headers": {"Date": "Sat, 05 Dec 2026"}, "body": {"a/b": [1.5, None, True]}},
    [0.1, 1e300, -0.0, 5e-324, 2**63, -(2**63), 10**400, 'é😀\u2028\x00\x1f"\\'],
    {"nan": float("nan"), "inf": float("inf")},
    "",
]


@pytest.mark.parametrize("value", VALUES)
def test_compact_text_parses_to_what_json_writes(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    # Compared as json writes what each parses to: NaN is not equal to itself.
    assert json.dumps(json.loads(compact(value))) == json.dumps(json.loads(expected))


def test_compact_writes_what_json_cannot_as_json_does() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert json.loads(compact({"x": Odd(), "big": 10**40})) == {"x": "odd", "big": 10**40}


def test_every_character_but_lone_surrogates_is_escaped_as_json_escapes_it() -> None:
    text = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
    assert compact(text) == json.dumps(text, ensure_ascii=False)
    assert compact([text, {"k": text}]) == json.dumps(
        [text, {"k": text}], ensure_ascii=False, separators=(",", ":")
    )


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), {1}, b"x", object()])
def test_strict_refuses_what_jsonb_cannot_take(value: Any) -> None:
    with pytest.raises((OverflowError, TypeError, ValueError)):
        strict({"ok": [1], "bad": value})


@pytest.mark.parametrize("secret", ["sk-live-1234/5678", 'quo"te\\d', "tab\tand\u2028é"])
def test_a_secret_is_found_in_the_compact_text(secret: str) -> None:
    value = {"body": {"echo": f"token {secret} end"}}
    redactor = Redactor([secret])
    redactor.remember_json(value, compact(value))
    assert redactor.value(value) == {"body": {"echo": f"token {MASK} end"}}
