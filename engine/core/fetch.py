"""Plain HTTP requests for the HTTP block, straight on the factory's guarded aiohttp session.

httpx stays for the openai SDK; for the HTTP block it doubled the per-request cost (URL
re-parsing, header models, cookie extraction). Every hop still goes through
`OutboundFactory.route` (host overrides + SSRF guard) and the session's guarded resolver,
and redirects are followed here, hop by hop, so each one is checked again. A redirect that
leaves the first URL's origin (scheme, host, port) loses every credential header, as in
browsers and curl: the next host is whoever the first one names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
import yarl

from engine.core.errors import BlockError, TransientError
from engine.core.outbound import CALL_DEPTH_HEADER, TRANSPORT_ERRORS, OutboundFactory

REDIRECTS = {301, 302, 303, 307, 308}
# Dropped on a cross-origin redirect, with whatever headers the caller marks as secret.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CALL_DEPTH = CALL_DEPTH_HEADER.lower()


class FetchResult(NamedTuple):
    """One answer. A named tuple: as immutable as a frozen dataclass, built in half the time
    (one per request)."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    content_type: str
    charset: str | None


def with_query(url: str, params: Mapping[str, str] | None) -> str:
    if not params:
        return url
    joiner = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
    return url + joiner + urlencode(params)


async def fetch(
    factory: OutboundFactory,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    max_bytes: int,
    secret_headers: Collection[str] = (),
    follow_redirects: bool = True,
) -> FetchResult:
    """One request; `secret_headers` (names) are sent to the first URL's origin only.

    With `follow_redirects` off a 3xx is the result, like any other response.
    """
    session = factory.aiohttp_session()
    # The session sends the run's call depth; a block may not lower it to recurse forever.
    headers = {k: v for k, v in (headers or {}).items() if k.lower() != _CALL_DEPTH}
    first_url = url  # its origin is worked out on a redirect only: most requests have none
    for _ in range(factory.config.max_redirects + 1):
        hop = await factory.hop(url)
        hop_headers = headers
        if hop.host_header is not None:
            hop_headers = {**headers, "Host": hop.host_header}
        # Each hop is a call to its host (as written, before overrides) under that
        # provider's caps and rates, shared with every run on this loop.
        provider = factory.providers.call(hop.host)
        async with provider:
            try:
                async with session.request(
                    method,
                    yarl.URL(hop.url, encoded=True),  # keep the caller's encoding byte for byte
                    headers=hop_headers,
                    data=data,
                    allow_redirects=False,
                ) as response:
                    provider.observe(response.status, response.headers)
                    location = response.headers.get("Location")
                    if follow_redirects and response.status in REDIRECTS and location:
                        next_url = urljoin(url, location)  # relative to the URL as written
                        if _origin(next_url) != _origin(first_url):
                            # Gone for good: a later hop back to the origin does not restore them.
                            private = CREDENTIAL_HEADERS | {n.lower() for n in secret_headers}
                            headers = {k: v for k, v in headers.items() if k.lower() not in private}
                        if response.status == 303 or (
                            response.status in {301, 302} and method not in {"GET", "HEAD"}
                        ):
                            method, data = "GET", None
                        url = next_url
                        continue
                    body = await _read_limited(response, max_bytes)
                    return FetchResult(
                        status=response.status,
                        headers=dict(response.headers),
                        body=body,
                        url=url,
                        content_type=response.content_type,
                        charset=response.charset,
                    )
            except TRANSPORT_ERRORS as exc:
                raise TransientError(
                    f"{method} {_without_query(url)} failed: {type(exc).__name__}: {exc}",
                    timeout=isinstance(exc, TimeoutError),
                ) from exc
            except aiohttp.InvalidURL as exc:
                raise BlockError(f"invalid URL {exc}") from exc
    raise BlockError(
        f"more than {factory.config.max_redirects} redirects from {_without_query(url)}"
    )


async def _read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise BlockError(f"response larger than {max_bytes} bytes")
    headers = response.headers
    if declared is not None and "Content-Encoding" not in headers:
        if "Transfer-Encoding" not in headers:  # as declared: the parser stops there
            return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise BlockError(f"response larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # an unusable port: the next hop fails; it is no one's origin
        port = -1
    return scheme, (parts.hostname or "").rstrip(".").lower(), port


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def decode_body(result: FetchResult) -> Any:
    """JSON when the server says JSON (and it parses), text otherwise."""
    import json

    text = result.body.decode(result.charset or "utf-8", errors="replace")
    if "json" in result.content_type:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text
