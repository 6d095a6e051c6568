"""Response: what a caller who waited for the run (`Prefer: wait=`) gets back.

The block renders a status code, a few headers and a body built from references; its output
is that answer, which `engine/run_answer.py` turns into the HTTP response once the run has
ended. `error_status` is the status used instead when the run fails before or in this
block (the failing block's error is the body). At most one per workflow, never in a loop
(engine/core/validation.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.blocks.base import BaseBlock, config_schema
from engine.core.errors import BlockError
from engine.core.graph import RESPONSE_TYPE
from engine.core.refs import find_references
from engine.core.schemas import JsonSchema, obj
from engine.core.spec import BlockContext

DEFAULT_STATUS = 200
DEFAULT_ERROR_STATUS = 500
# Headers a workflow may set on its answer: what describes the content and its caching, and
# its own `X-` headers. Never cookies, CORS, security policies or framing (the answer comes
# from the application's own origin).
SAFE_HEADERS = frozenset(
    {
        "cache-control",
        "content-language",
        "content-type",
        "etag",
        "expires",
        "last-modified",
        "link",
        "location",
        "retry-after",
        "vary",
    }
)
UNSAFE_X_HEADERS = frozenset(
    {
        "x-content-type-options",
        "x-frame-options",
        "x-xss-protection",
        "x-permitted-cross-domain-policies",
        "x-powered-by",
        "x-real-ip",
    }
)
UNSAFE_X_PREFIXES = ("x-forwarded-", "x-klyntos-")
# Content types the answer may declare: data, never markup a browser would run.
SAFE_CONTENT_TYPES = frozenset(
    {"application/json", "application/problem+json", "text/plain", "text/csv"}
)
HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096


def header_problem(name: str) -> str | None:
    """Why a header name may not be set by a Response block (None when it may)."""
    if not HEADER_NAME.fullmatch(name):
        return f"'{name}' is not a header name (letters, digits and -)"
    lower = name.lower()
    if lower in SAFE_HEADERS:
        return None
    if (
        lower.startswith("x-")
        and lower not in UNSAFE_X_HEADERS
        and not lower.startswith(UNSAFE_X_PREFIXES)
    ):
        return None
    return f"'{name}' cannot be set; allowed: {', '.join(sorted(SAFE_HEADERS))} and your own X- headers"


def content_type_problem(value: str) -> str | None:
    media, *parameters = (part.strip() for part in value.split(";"))
    media = media.lower()
    if media not in SAFE_CONTENT_TYPES:
        return f"Content-Type '{media}' is not allowed; use one of {', '.join(sorted(SAFE_CONTENT_TYPES))}"
    # The body is always sent as UTF-8: another charset would make a client (or an old
    # browser sniffing UTF-7) read different text than the one the block wrote.
    for parameter in parameters:
        name, _, given = parameter.partition("=")
        if name.strip().lower() != "charset" or given.strip().strip('"').lower() != "utf-8":
            return f"Content-Type parameter '{parameter}' is not allowed; the body is sent as charset=utf-8"
    return None


def value_problem(name: str, value: str) -> str | None:
    """Header values are Latin-1 text on the wire, without control characters."""
    if any(ord(c) < 32 or ord(c) == 127 or ord(c) > 255 for c in value):
        return f"header '{name}' may only hold printable Latin-1 text (no line breaks)"
    if len(value) > MAX_HEADER_VALUE:
        return f"header '{name}' is longer than {MAX_HEADER_VALUE} characters"
    return None


class ResponseBlock(BaseBlock):
    type = RESPONSE_TYPE
    label = "Response"
    description = "Answers a caller who waits for the run (Prefer: wait=…): status, headers, body."
    icon = "reply"
    config_schema = config_schema(
        {
            "status": {
                "type": "integer",
                "minimum": 200,
                "maximum": 599,
                "default": DEFAULT_STATUS,
                "title": "Status code",
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "maxProperties": MAX_HEADERS,
                "title": "Headers (Content-Type, Cache-Control, Location, X-…)",
            },
            "body": {"title": "Body (JSON, references keep their type)"},
            "error_status": {
                "type": "integer",
                "minimum": 400,
                "maximum": 599,
                "default": DEFAULT_ERROR_STATUS,
                "title": "Status when the run fails (body: the failing block's error)",
            },
        },
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj(
            {
                "status": {"type": "integer"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {},
            }
        )

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        for name, value in (config.get("headers") or {}).items():
            problem = header_problem(name)
            if problem is None and name.lower() == "content-type" and not find_references(value):
                problem = content_type_problem(value)
            if problem:
                problems.append((f"headers.{name}", problem))
        return problems

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for name, value in (ctx.config.get("headers") or {}).items():
            text = value if isinstance(value, str) else str(value)
            problem = header_problem(name) or value_problem(name, text)
            if problem is None and name.lower() == "content-type":
                problem = content_type_problem(text)
            if problem:
                raise BlockError(problem)
            headers[name] = text
        return {
            "status": int(ctx.config.get("status") or DEFAULT_STATUS),
            "headers": headers,
            "body": ctx.config.get("body"),
        }
