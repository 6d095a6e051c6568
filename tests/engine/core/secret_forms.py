"""The forms a secret's value travels in (escaped, encoded, quoted): what a test asserts is
absent from anything a user reads."""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus


def escaped_forms(secret: str) -> dict[str, str]:
    def body(quoted: str) -> str:  # a repr's or json's text between its quotes
        return quoted[1:-1]

    return {
        "as is": secret,
        "url": quote(secret, safe=""),
        "url path": quote(secret),
        "url query": quote_plus(secret),
        "json": body(json.dumps(secret, ensure_ascii=False)),
        "json ascii": body(json.dumps(secret)),
        "repr": repr("'\"" + secret)[4:-1],
        "ascii": ascii("'\"" + secret)[4:-1],
        "bytes repr": repr(("'\"" + secret).encode())[5:-1],
        "slack": secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "html": html.escape(secret),
        "json of slack": body(json.dumps(html.escape(secret, quote=False))),
    }


def forms_in(text: str, secret: str) -> list[str]:
    """The names of the forms of `secret` found in `text`."""
    return [name for name, form in escaped_forms(secret).items() if form in text]
