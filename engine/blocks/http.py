"""HTTP request through the one outbound client (SSRF guard, host overrides).

References in the URL are encoded for where they land: percent-encoded in the path and query,
checked to be a bare host name in the authority. Header values may not carry CR or LF.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from engine.blocks.base import BaseBlock, config_schema
from engine.core.errors import BlockError, TransientError, is_retryable_status, parse_retry_after
from engine.core.fetch import decode_body, fetch, with_query
from engine.core.refs import (
    REF_PATTERN,
    Reference,
    find_references,
    stringify,
    substitute,
    whole_reference,
)
from engine.core.schemas import JsonSchema, obj
from engine.core.spec import BlockContext
from engine.core.ssrf import ADDRESS_HINT, address_refusal, literal_address

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
# Up to this body size an answer is measured by writing it out as JSON once (the text also
# spares the redactor's scan); a bigger one is walked, and stops at the output limit.
WRITTEN_OUT_BYTES = 64 * 1024
# How much of an error response's body a step error quotes (characters, masked first).
ERROR_EXCERPT = 200
STRING_MAP: JsonSchema = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
HOST_FORBIDDEN = set("/?#@\\ \t\r\n%")
# What `quote(text, safe="")` leaves as it is: such a value (a domain, an id) is its own
# encoding, found by one regex match rather than quote's encode, strip and decode.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


class HttpBlock(BaseBlock):
    type = "http"
    label = "HTTP request"
    description = "Calls an HTTP API."
    icon = "globe"
    test_effect = "sends the request for real: a POST, PUT or DELETE changes things there"
    raw_fields = frozenset({"url"})
    config_schema = config_schema(
        {
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "default": "GET"},
            "url": {"type": "string", "minLength": 1, "title": "URL"},
            "query": {**STRING_MAP, "title": "Query parameters"},
            "headers": {**STRING_MAP, "title": "Headers"},
            "body": {"title": "Body (JSON)"},
            "fail_on_status": {"type": "boolean", "default": True, "title": "Fail on 4xx"},
            "follow_redirects": {
                "type": "boolean",
                "default": True,
                "title": "Follow redirects (credentials never leave the first host)",
            },
        },
        required=["url"],
        retry=True,
        cache=True,
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj({"status": {"type": "integer"}, "headers": {"type": "object"}, "body": {}})

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        url = str(config.get("url", ""))
        if whole_reference(url) is None and not url.lower().startswith(("http://", "https://")):
            return [("url", "the URL must start with http:// or https://")]
        return []

    def advice(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        """A URL whose host is written as a loopback or private address (or localhost) is
        refused at run time by the SSRF guard: say so while editing, not on every item."""
        host = literal_host(str(config.get("url", "")))
        if host is None:
            return []
        if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
            reason: str | None = "loopback"
        else:
            address = literal_address(host)
            reason = address_refusal(address) if address is not None else None
        if reason is None:
            return []
        return [
            ("url", f"{host} is a {reason} address, refused when the block runs: {ADDRESS_HINT}")
        ]

    def origin(self, config: Mapping[str, Any], services: Any) -> str | None:
        url = str(config.get("url", ""))
        if literal_host(url) is None:
            return None
        parts = urlsplit(url)
        host_port = parts.netloc.rpartition("@")[2]  # never the credentials
        return None if find_references(host_port) else f"{parts.scheme}://{host_port}/"

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        url = with_query(render_url(ctx.raw_config["url"], ctx), _query(ctx.config.get("query")))
        method = ctx.config.get("method", "GET")
        headers = {
            str(k): _header_value(k, v) for k, v in (ctx.config.get("headers") or {}).items()
        }
        body = ctx.config.get("body")
        data: bytes | None = None
        if body is not None and method not in {"GET", "HEAD"}:
            if isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode()
                headers.setdefault("Content-Type", "application/json")
        result = await fetch(
            ctx.services.outbound,
            method,
            url,
            headers=headers,
            data=data,
            max_bytes=MAX_RESPONSE_BYTES,
            secret_headers=_secret_headers(ctx, headers),
            follow_redirects=bool(ctx.config.get("follow_redirects", True)),
        )
        if result.status >= 400:
            summary = f"{method} {_without_query(result.url)} returned {result.status}"
            if is_retryable_status(result.status):
                raise TransientError(
                    summary,
                    retry_after=parse_retry_after(result.headers.get("Retry-After")),
                    status=result.status,
                )
            if ctx.config.get("fail_on_status", True):
                # Enough bytes for the excerpt plus a secret straddling its end (UTF-8 <= 4/char).
                head = result.body[: (ERROR_EXCERPT + ctx.redactor.longest) * 4]
                text = head.decode(errors="replace")
                raise BlockError(f"{summary}: {ctx.redactor.excerpt(text, ERROR_EXCERPT)}")
        output = {"status": result.status, "headers": result.headers, "body": decode_body(result)}
        if len(result.body) <= WRITTEN_OUT_BYTES:
            ctx.written_out(output)  # a tree just parsed: its JSON is its size
        return output


def _secret_headers(ctx: BlockContext, headers: Mapping[str, str]) -> set[str]:
    """Headers that carry a secret: written with an `<env.…>` reference, or holding a
    secret's value (one that arrived through another block's output)."""
    written = ctx.raw_config.get("headers") or {}
    secret = set()
    for name, value in headers.items():
        template = written.get(name) if isinstance(written, Mapping) else None
        if isinstance(template, str) and _names_an_env_value(template):
            secret.add(name)
        elif ctx.redactor.contains_secret(value):
            secret.add(name)
    return secret


@lru_cache(maxsize=512)
def _names_an_env_value(template: str) -> bool:
    return any(r.root == "env" for r in find_references(template))


def _query(params: Any) -> dict[str, str]:
    return {str(k): stringify(v) for k, v in (params or {}).items()}


def render_url(template: str, ctx: BlockContext) -> str:
    whole, authority_end = _url_shape(template)
    if whole is not None:
        return stringify(ctx.scope.resolve(whole))  # the whole URL is one value, e.g. a secret

    def encode(value: Any, position: int) -> str:
        text = stringify(value)
        if position < authority_end:
            bad = HOST_FORBIDDEN.intersection(text)
            if bad or not text:
                raise BlockError(_not_a_host_name(template, position))
            return text
        return text if _UNRESERVED(text) else quote(text, safe="")

    return substitute(template, ctx.scope, encode)


def _not_a_host_name(template: str, position: int) -> str:
    """The refusal of a value written into a URL's host. It names the reference (the
    author's own text), never the value: a value may be, or hold, a secret, and an error
    quoting it (repr-escaped, cut) would carry it in a form masking can miss."""
    found = REF_PATTERN.match(template, position)
    where = found.group(0) if found else "a value"
    return (
        f"{where} in the URL's host is not a host name: a value there must not be empty"
        " nor hold / ? # @ \\ % or whitespace"
    )


@lru_cache(maxsize=512)
def _url_shape(template: str) -> tuple[Reference | None, int]:
    """The reference a URL template is made of, if it is one, and where its authority ends:
    read once per template (a loop renders the same one for every item)."""
    whole = whole_reference(template)
    if whole is not None and template == whole.text:
        return whole, 0
    return None, _authority_end(template)


def _authority_end(url: str) -> int:
    start = url.find("//")
    start = start + 2 if start >= 0 else 0
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    return min(ends) if ends else len(url)


def _header_value(name: Any, value: Any) -> str:
    text = stringify(value)
    if "\r" in text or "\n" in text:
        raise BlockError(f"header '{name}' contains a line break")
    return text


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def literal_host(url: str) -> str | None:
    """The host of a URL written out in full (None when a reference decides it)."""
    if not url.lower().startswith(("http://", "https://")):
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:  # e.g. an unclosed [ in an IPv6 host: check() and the run say more
        return None
    if not host or find_references(host):
        return None
    return host
