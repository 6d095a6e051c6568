"""Redaction of secret values, by value (never by field name)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from engine.core.json_fast import compact

MASK = "[redacted]"
# Shorter values would mask ordinary text everywhere; real keys and tokens are far longer.
MIN_SECRET_LENGTH = 4
# Texts remember_json keeps for values not scanned yet (about one per step in flight).
_REMEMBERED_TEXTS = 1024


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        # A secret also travels percent-encoded (in a URL that ends up in an error message).
        values |= {quote(v, safe="") for v in values}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(values, key=len, reverse=True)
        # How each one reads inside JSON text, where quotes, backslashes and control
        # characters are escaped: the fast pre-check scans serialised payloads for these.
        self._json_forms = {json.dumps(v, ensure_ascii=False)[1:-1] for v in self._secrets}
        # id -> (value, its JSON text): what a block wrote out already (remember_json).
        self._texts: dict[int, tuple[Any, str]] = {}

    @property
    def longest(self) -> int:
        """Length of the longest form of a secret (how far past a cut one can reach)."""
        return len(self._secrets[0]) if self._secrets else 0

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def contains_secret(self, text: str) -> bool:
        return any(secret in text for secret in self._secrets)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def excerpt(self, text: str, limit: int) -> str:
        """At most `limit` characters of `text` with every secret masked: redact, then cut.

        Cutting first would leave the head of a secret that straddles the cut unmatched (and
        so unmasked): the cut is moved past any secret occurrence that straddles it, only that
        prefix is redacted (a 10 MB body is never scanned whole), and the result is cut again.
        """
        end = min(limit, len(text))
        moved = True
        while moved and end < len(text):
            moved = False
            for secret in self._secrets:
                start = text.find(secret, max(0, end - len(secret) + 1))
                if 0 <= start < end and start + len(secret) > end:
                    end, moved = start + len(secret), True
        return self.text(text[:end])[:limit]

    def value(self, value: Any) -> Any:
        if not self._secrets:
            return value
        kind = type(value)
        if kind is str:
            return self.text(value)  # the same object when it holds none
        if not value or kind is int or kind is float or kind is bool:
            return value  # no text in it: None, numbers, empty containers
        if not self._mentions_secret(value):
            return value
        return self._walk(value)

    def remember_json(self, value: Any, text: str) -> None:
        """`value` as `json.dumps(value, ensure_ascii=False, default=str)` or json_fast's
        `compact` wrote it (any separators: a secret's forms are looked for inside its
        strings): its next scan reads this text rather than writing it again (kept until
        then)."""
        if not self._secrets:
            return
        if len(self._texts) >= _REMEMBERED_TEXTS:  # values never scanned: forget them
            self._texts.clear()
        self._texts[id(value)] = (value, text)

    def _mentions_secret(self, value: Any) -> bool:
        # One C-speed serialisation and substring scan is far cheaper than walking the value
        # in Python, and nearly every payload contains no secret at all.
        known = self._texts.pop(id(value), None)
        if known is not None and known[0] is value:
            text = known[1]
        else:
            try:
                text = compact(value)  # escapes as json.dumps(ensure_ascii=False) does
            except (TypeError, ValueError, OverflowError):  # too deep to write: walk it
                return True
        return any(form in text for form in self._json_forms)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                self._walk(k) if isinstance(k, str) else k: self._walk(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        return value
