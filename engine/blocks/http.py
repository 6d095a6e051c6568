"""HTTP request through the one outbound client (SSRF guard, host overrides).

References in the URL are encoded for where they land: percent-encoded in the path and query,
checked to be a bare host name in the authority. Header values may not carry CR or LF.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from engine.blocks.base import BaseBlock, config_schema
from engine.core.refs import stringify, substitute, whole_reference
from engine.core.retry import BlockError, TransientError, is_retryable_status, parse_retry_after
from engine.core.schemas import JsonSchema, obj
from engine.core.spec import BlockContext

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
STRING_MAP: JsonSchema = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
HOST_FORBIDDEN = set("/?#@\\ \t\r\n%")


class HttpBlock(BaseBlock):
    type = "http"
    label = "HTTP request"
    description = "Calls an HTTP API."
    icon = "globe"
    raw_fields = frozenset({"url"})
    config_schema = config_schema(
        {
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "default": "GET"},
            "url": {"type": "string", "minLength": 1, "title": "URL"},
            "query": {**STRING_MAP, "title": "Query parameters"},
            "headers": {**STRING_MAP, "title": "Headers"},
            "body": {"title": "Body (JSON)"},
            "fail_on_status": {"type": "boolean", "default": True, "title": "Fail on 4xx"},
        },
        required=["url"],
    )

    def output_schema(self, config: Mapping[str, Any]) -> JsonSchema:
        return obj({"status": {"type": "integer"}, "headers": {"type": "object"}, "body": {}})

    def check(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        url = str(config.get("url", ""))
        if whole_reference(url) is None and not url.lower().startswith(("http://", "https://")):
            return [("url", "the URL must start with http:// or https://")]
        return []

    async def run(self, ctx: BlockContext) -> dict[str, Any]:
        url = render_url(ctx.raw_config["url"], ctx)
        method = ctx.config.get("method", "GET")
        headers = {str(k): _header_value(k, v) for k, v in (ctx.config.get("headers") or {}).items()}
        query = {str(k): stringify(v) for k, v in (ctx.config.get("query") or {}).items()}
        body = ctx.config.get("body")
        request: dict[str, Any] = {"headers": headers, "params": query or None}
        if body is not None and method not in {"GET", "HEAD"}:
            if isinstance(body, str):
                request["content"] = body.encode()
            else:
                request["json"] = body
        client = ctx.services.outbound.httpx_client()
        async with client.stream(method, url, **request) as response:
            raw = await _read_limited(response)
        result = {"status": response.status_code, "headers": dict(response.headers), "body": _decode(response, raw)}
        if response.status_code >= 400:
            summary = f"{method} {_without_query(url)} returned {response.status_code}"
            if is_retryable_status(response.status_code):
                raise TransientError(summary, retry_after=parse_retry_after(response.headers.get("retry-after")))
            if ctx.config.get("fail_on_status", True):
                raise BlockError(f"{summary}: {raw[:200].decode(errors='replace')}")
        return result


def render_url(template: str, ctx: BlockContext) -> str:
    whole = whole_reference(template)
    if whole is not None and template == whole.text:
        return stringify(ctx.scope.resolve(whole))  # the whole URL is one value, e.g. a secret
    authority_end = _authority_end(template)

    def encode(value: Any, position: int) -> str:
        text = stringify(value)
        if position < authority_end:
            bad = HOST_FORBIDDEN.intersection(text)
            if bad or not text:
                raise BlockError(f"a value in the URL's host is not a host name: {text!r}")
            return text
        return quote(text, safe="")

    return substitute(template, ctx.scope, encode)


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


async def _read_limited(response: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise BlockError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(response: Any, raw: bytes) -> Any:
    content_type = response.headers.get("content-type", "")
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text
