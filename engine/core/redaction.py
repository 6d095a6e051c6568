"""Redaction of secret values, by value (never by field name).

A secret is looked for in every form it travels in, not only as typed: percent-encoded (in
a URL an error quotes), JSON-escaped (an upstream echoing its request, with or without
`ensure_ascii`, HTML-safe as Go writes it), Python repr-escaped (an error message quoting a
value with `!r`, str or bytes), HTML/Slack-escaped (`&amp; &lt; &gt;`, Slack echoing a
message), and the JSON text of each of those. The forms are computed once per set of
secrets (`_forms`, cached), and a secret made of letters, digits and `-_.~` has one form
only, so the cost is one substring scan per distinct form. Case changes, reversal or any
other computation a workflow runs on its own secrets are not forms: a workflow can always
transform what it may read, and masking every transformation is impossible.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus

from engine.core.json_fast import compact

MASK = "[redacted]"
# Shorter values would mask ordinary text everywhere; real keys and tokens are far longer.
MIN_SECRET_LENGTH = 4
# Texts remember_json keeps for values not scanned yet (about one per step in flight).
_REMEMBERED_TEXTS = 1024
# Secret sets whose forms are kept (one per owner whose runs or admin pages are live).
_CACHED_SETS = 256
# JSON as Go's encoding/json writes it by default: markup characters as \u escapes.
# Characters no form below escapes: a run of them in a secret is in every one of its forms.
_UNESCAPED_RUN = re.compile(r"[A-Za-z0-9._~-]+")
# A shorter anchor would be found nearly everywhere, sparing no scan.
_MIN_ANCHOR = 2
_HTML_SAFE_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _json_forms(value: str) -> set[str]:
    """How `value` reads inside a JSON string: as json.dumps writes it with and without
    ensure_ascii, and HTML-safe (Go)."""
    plain = json.dumps(value, ensure_ascii=False)[1:-1]
    ascii_only = json.dumps(value)[1:-1]
    return {
        plain,
        ascii_only,
        plain.translate(_HTML_SAFE_JSON),
        ascii_only.translate(_HTML_SAFE_JSON),
    }


def _repr_forms(value: str) -> set[str]:
    """How `value` reads inside a Python repr of a text holding it, str or bytes, with the
    quote escaped (the text holds both quotes) or not (it holds only `'`)."""
    forms = {
        # A text holding both quotes is written in '…' with \' escaped: the leading '" then
        # reads \'" (3 characters), the value's own escaping follows.
        repr("'\"" + value)[4:-1],
        ascii("'\"" + value)[4:-1],
        repr(("'\"" + value).encode())[5:-1],
    }
    if '"' not in value:  # then a text holding ' but no " is written in "…", ' as is
        forms |= {
            repr("'" + value)[2:-1],
            ascii("'" + value)[2:-1],
            repr(("'" + value).encode())[3:-1],
        }
    return forms


def _first_forms(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),  # a path keeps its slashes
        quote_plus(secret),  # a query or form body: spaces as +
        html.escape(secret, quote=False),  # Slack's escaping: & < >
        html.escape(secret),
        *_json_forms(secret),
        *_repr_forms(secret),
    }


class _Group(NamedTuple):
    """One secret's forms, longest first, and how each reads in JSON text; with its anchor:
    its longest run of characters no escaping above changes (ASCII letters, digits, `-_.~`),
    present in every form, so one scan for it rules all of them out."""

    anchor: str | None
    forms: tuple[str, ...]
    json_forms: tuple[str, ...]


def _anchor(secret: str, forms: set[str]) -> str | None:
    runs = _UNESCAPED_RUN.findall(secret)
    best = max(runs, key=len, default="")
    if len(best) < _MIN_ANCHOR or forms == {best}:
        return None  # no anchor worth a scan of its own: the forms are scanned directly
    return best


@functools.lru_cache(maxsize=_CACHED_SETS)
def _groups(secrets: frozenset[str]) -> tuple[tuple[_Group, ...], tuple[str, ...]]:
    """Each secret's group, the longest secret first, and every form of every secret,
    longest first (a secret that contains another is masked whole)."""
    groups = []
    for secret in sorted(secrets, key=lambda s: (-len(s), s)):
        forms = _first_forms(secret)
        for form in list(forms):  # an escaped form echoed inside JSON (Slack's answer, a body)
            forms |= {json.dumps(form, ensure_ascii=False)[1:-1], json.dumps(form)[1:-1]}
        ordered = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        # How each form reads in json_fast's text (json.dumps' escaping, ensure_ascii=False).
        in_json = tuple(dict.fromkeys(json.dumps(f, ensure_ascii=False)[1:-1] for f in ordered))
        groups.append(_Group(_anchor(secret, forms), ordered, in_json))
    every = {form for group in groups for form in group.forms}
    return tuple(groups), tuple(sorted(every, key=lambda f: (-len(f), f)))


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = frozenset(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH)
        # Every form of every secret, computed once per set of secrets (cached).
        self._groups, self._secrets = _groups(values)
        # text()'s scan: the forms of secrets without an anchor, and the anchored groups.
        self._direct = tuple(f for g in self._groups if g.anchor is None for f in g.forms)
        self._anchored = tuple((g.anchor, g.forms) for g in self._groups if g.anchor is not None)
        # id -> (value, its JSON text): what a block wrote out already (remember_json).
        self._texts: dict[int, tuple[Any, str]] = {}

    @property
    def longest(self) -> int:
        """Length of the longest form of a secret (how far past a cut one can reach)."""
        return len(self._secrets[0]) if self._secrets else 0

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def contains_secret(self, text: str) -> bool:
        return any(
            (group.anchor is None or group.anchor in text)
            and any(form in text for form in group.forms)
            for group in self._groups
        )

    def text(self, text: str) -> str:
        found = None
        for form in self._direct:
            if form in text:
                found = [form] if found is None else [*found, form]
        for anchor, forms in self._anchored:
            if anchor in text:
                for form in forms:
                    if form in text:
                        found = [form] if found is None else [*found, form]
        if found is None:
            return text  # the same object
        if len(found) > 1:
            found.sort(key=len, reverse=True)  # a form that contains another: masked whole
        for form in found:
            text = text.replace(form, MASK)
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
        return any(
            (group.anchor is None or group.anchor in text)
            and any(form in text for form in group.json_forms)
            for group in self._groups
        )

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
