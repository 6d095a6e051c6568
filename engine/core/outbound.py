"""The one place that builds outbound HTTP clients.

Every outbound request of the product goes through an :class:`OutboundFactory`:

* one shared ``aiohttp.ClientSession`` whose connector (:class:`~engine.core.ssrf.
  GuardedConnector`) refuses non-public IP literals as it connects to them and resolves
  names through :class:`~engine.core.ssrf.GuardedResolver` (resolve once, refuse
  non-public addresses, connect to exactly the checked addresses);
* one shared ``httpx.AsyncClient`` running on ``httpx_aiohttp``'s aiohttp transport over
  that session (much faster than httpx's default transport under concurrency),
  behind a :class:`GuardedTransport` that applies host overrides and refuses IP
  literals on every hop, redirects included;
* the openai and slack_sdk clients are handed the shared httpx client / session.

Trust: a request skips the guard only when its *original* host was routed by a host
override, or its host / host:port is in ``OutboundConfig.trusted_hosts`` or was added
with :meth:`OutboundFactory.trust_base_url`.  A URL that names an override *target*
directly is not trusted.

A factory belongs to the event loop that first uses it (the aiohttp session is bound
to that loop); build one factory per loop and ``await factory.aclose()`` on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
import openai
import yarl
from aiohttp import ClientTimeout
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from engine.core.eager_body import EagerBodyRequest
from engine.core.errors import TransientError
from engine.core.limits import MAX_CONCURRENT
from engine.core.providers import ProviderRegistry, registry_for_loop
from engine.core.ssrf import (
    BlockedAddressError,
    GuardedConnector,
    GuardedResolver,
    address_refusal,
    literal_address,
)

__all__ = [
    "CALL_DEPTH_HEADER",
    "BlockedAddressError",
    "GuardedTransport",
    "OutboundConfig",
    "OutboundFactory",
    "parse_host_overrides",
]


# Failures of the connection itself, in the clients this factory builds (httpx, and aiohttp
# under it and under slack_sdk): transient. What the server answered is the caller's to
# classify (errors.is_retryable_status); a refused address (BlockedAddressError) is not.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)


@contextlib.contextmanager
def transport_errors(what: str) -> typing.Iterator[None]:
    """Raise the transport's connection failures inside as TransientError naming `what`."""
    try:
        yield
    except TRANSPORT_ERRORS as exc:
        timeout = isinstance(exc, TimeoutError | httpx.TimeoutException)
        raise TransientError(f"{what}: {type(exc).__name__}: {exc}", timeout=timeout) from exc


_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
# URLs whose route GuardedTransport remembers (most are an LLM endpoint's few; an HTTP
# block's URLs vary per item and only churn it).
_MAX_HOPS = 256
# How many runs led to a request: a run sends its own depth + 1 on every outbound call and
# the webhook endpoint refuses past KLYNTOS_MAX_CALL_DEPTH (a workflow calling itself).
CALL_DEPTH_HEADER = "Klyntos-Call-Depth"

HostPort = tuple[str, int | None]
# Origins whose hop OutboundFactory.hop remembers: an HTTP block calls one or a few APIs,
# or each lead's own site (those churn it, and are re-parsed as before).
_MAX_ORIGINS = 1024
# A URL's scheme and authority as written: what its route depends on.
_ORIGIN = re.compile(r"[^:/?#\s]+://[^/?#]*")


class Hop(typing.NamedTuple):
    """Where one request hop goes: `url` after host overrides, the `Host` header to send
    when that re-based it (the target's authority, else None), and the host as written,
    whose provider caps and rates the call counts under. A named tuple (one per request):
    immutable, and built in half a frozen dataclass's time."""

    url: str
    host_header: str | None
    host: str


def _plain_rest(rest: str) -> bool:
    """Whether `prefix + rest` is what splitting and joining the URL would give: no control
    characters or trailing space (urlsplit drops them) and no empty query or fragment."""
    if not rest:
        return True
    return rest.isprintable() and not rest.endswith((" ", "?", "#")) and "?#" not in rest


def _normalize_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    return host


def _valid_host_key(host: str) -> bool:
    if not host:
        return False
    if literal_address(host) is not None:
        return True
    return all(c.isalnum() or c in "-._" for c in host)


def _parse_base_url(base: str, *, entry: str) -> str:
    parts = urlsplit(base.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(
            f"host override {entry!r}: base {base!r} must be an http:// or https:// URL with a host"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"host override {entry!r}: base {base!r} must not have a query or fragment"
        )
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError(f"host override {entry!r}: base {base!r} has an invalid port") from exc
    return base.strip().rstrip("/")


def parse_host_overrides(text: str) -> dict[str, str]:
    """Parse ``"host=http://base,host2=https://base2/prefix"`` into a host → base map.

    Raises ``ValueError`` naming the bad entry for a missing ``=``, an empty or
    malformed host, or a base that is not an absolute http(s) URL.
    """
    overrides: dict[str, str] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        host, sep, base = entry.partition("=")
        if not sep:
            raise ValueError(f"host override {entry!r}: expected 'host=http(s)://base'")
        host = _normalize_host(host)
        if not _valid_host_key(host):
            raise ValueError(f"host override {entry!r}: empty or malformed host")
        overrides[host] = _parse_base_url(base, entry=entry)
    return overrides


def _parse_trusted(entry: str) -> HostPort:
    entry = entry.strip().lower()
    if not entry:
        raise ValueError("empty trusted host entry")
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:  # a name, an IPv4 address or a bare IPv6 address
        host, port = entry, ""
    host = _normalize_host(host)
    if not host or (port and not port.isdigit()):
        raise ValueError(f"malformed trusted host entry {entry!r}")
    return host, int(port) if port else None


@dataclass(frozen=True)
class OutboundConfig:
    """Operator configuration of outbound HTTP."""

    host_overrides: Mapping[str, str] = field(default_factory=dict)
    trusted_hosts: frozenset[str] = frozenset()  # "host" or "host:port"
    timeout: float = 30.0
    # A loop's items in flight never wait for a connection (see MAX_CONCURRENT).
    max_connections: int = MAX_CONCURRENT
    max_redirects: int = 5
    user_agent: str = "Klyntos/0.1"
    call_depth: int | None = None  # sent as CALL_DEPTH_HEADER on every request when set
    # How long a loop waits, as it starts, for the connections its items' first calls will
    # use (engine/core/preconnect.py); 0 opens none ahead.
    preconnect_wait: float = 0.25

    def default_headers(self) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent}
        if self.call_depth is not None:
            headers[CALL_DEPTH_HEADER] = str(self.call_depth)
        return headers


# The SDK's description of the machine it runs on, sent with every request: left out, as
# every header costs CPU in each of the SDK's, httpx's and aiohttp's header models.
_SDK_PLATFORM_HEADERS: dict[str, typing.Any] = {
    name: openai.Omit()
    for name in (
        "X-Stainless-Lang",
        "X-Stainless-Package-Version",
        "X-Stainless-OS",
        "X-Stainless-Arch",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Async",
    )
}


class _NoCookies(httpx.Cookies):
    """Cookies that stay empty: the shared client keeps none for any tenant.

    A no-op instead of a jar whose policy refuses every domain: httpx would still wrap
    every response and request for ``http.cookiejar`` to look at (~4% of an LLM call).
    """

    def __init__(self) -> None:
        super().__init__()

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None

    def __setitem__(self, name: str, value: str) -> None:
        return None

    def update(self, cookies: typing.Any = None) -> None:  # type: ignore[override]
        return None


class _SharedAsyncClient(httpx.AsyncClient):
    """The factory's httpx client: borrowers cannot close it, nor give it cookies.

    ``openai.AsyncOpenAI.close()`` and ``async with client:`` would otherwise close the
    one shared client for everybody; only :meth:`OutboundFactory.aclose` closes it.
    """

    def __init__(self, **kwargs: typing.Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _NoCookies()  # shared by all tenants: keep no cookies

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: typing.Any) -> None:
        self._cookies = _NoCookies()  # shared by all tenants: keep no cookies

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> typing.Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        return None

    async def _factory_aclose(self) -> None:
        await super().aclose()


class _AiohttpTransport(AiohttpTransport):
    """``httpx_aiohttp.AiohttpTransport`` that keeps httpx's URL encoding byte for byte.

    The stock transport hands aiohttp ``str(url)``, which yarl re-quotes (``%7E`` →
    ``~``, ``%2F`` in a query → ``/``), breaking signed URLs.  This passes an
    already-encoded ``yarl.URL`` instead and fetches the session from the factory on
    every request (so the session is created lazily inside the running loop).
    """

    def __init__(self, session: typing.Callable[[], aiohttp.ClientSession]) -> None:
        # Not calling the base __init__: it builds an SSL context (tens of ms, certificate
        # loading) that this subclass never uses — the shared session owns TLS.
        self.client = session
        self._session_getter = session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.send(request, yarl.URL(str(request.url), encoded=True))

    async def send(
        self, request: httpx.Request, url: yarl.URL, host: str | None = None
    ) -> httpx.Response:
        """Send `request` to `url`, with `host` as its Host header when given (a request
        re-based by a host override, without building a second httpx.Request for it)."""
        session = self._session_getter()
        timeout = request.extensions.get("timeout", {})
        sni_hostname = request.extensions.get("sni_hostname")
        headers = request.headers.multi_items()
        if host is not None:
            headers = [("host", host) if k == "host" else (k, v) for k, v in headers]
        with map_aiohttp_exceptions():
            data: bytes | httpx.AsyncByteStream | None
            try:
                data = request.content or None
            except httpx.RequestNotRead:
                data = request.stream  # type: ignore[assignment]
                # aiohttp chunks it itself
                headers = [(k, v) for k, v in headers if k != "transfer-encoding"]
            response = await session.request(
                method=request.method,
                url=url,
                headers=headers,
                data=data,
                allow_redirects=False,  # httpx follows redirects, hop by hop, through us
                auto_decompress=False,  # httpx decodes
                compress=False,
                timeout=_client_timeout(
                    timeout.get("connect"), timeout.get("read"), timeout.get("pool")
                ),
                server_hostname=sni_hostname,
            ).__aenter__()
        extensions: dict[str, typing.Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        return None  # the factory owns and closes the session


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> ClientTimeout:
    """httpx's timeouts as aiohttp's (frozen, so one per distinct set is shared)."""
    return ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


class GuardedTransport(httpx.AsyncBaseTransport):
    """Applies host overrides and the SSRF guard to every request httpx sends.

    httpx calls the transport once per hop, so redirects are checked too.  IP
    literals are refused here, before any connection; names are checked by the
    session's :class:`GuardedResolver` at connect time.
    """

    def __init__(self, factory: OutboundFactory, inner: httpx.AsyncBaseTransport) -> None:
        self._factory = factory
        self._inner = inner
        # URL -> where it goes (aiohttp URL, Host header when re-based), for the URLs whose
        # route is a pure function of the configuration (OutboundFactory.route_is_fixed):
        # an LLM endpoint's one URL skips re-parsing and re-basing on every call.
        self._hops: dict[str, tuple[yarl.URL, str | None]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"refusing non-http(s) URL {url}", request=request)
        raw = str(url)
        inner = self._inner
        if not isinstance(inner, _AiohttpTransport):
            rewritten, overridden = await self._factory.route(raw)
            if overridden:
                request = _retarget(request, httpx.URL(rewritten))
            return await inner.handle_async_request(request)
        hop = self._hops.get(raw)
        if hop is None:
            rewritten, overridden = await self._factory.route(raw)
            if overridden:
                target = httpx.URL(rewritten)
                hop = (yarl.URL(str(target), encoded=True), target.netloc.decode("ascii"))
            else:
                hop = (yarl.URL(raw, encoded=True), None)
            if self._factory.route_is_fixed(raw):
                if len(self._hops) >= _MAX_HOPS:
                    self._hops.clear()
                self._hops[raw] = hop
        return await inner.send(request, *hop)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _retarget(request: httpx.Request, url: httpx.URL) -> httpx.Request:
    headers = request.headers.copy()
    headers["Host"] = url.netloc.decode("ascii")
    new = httpx.Request(
        request.method, url, headers=headers, stream=request.stream, extensions=request.extensions
    )
    if isinstance(request.stream, httpx.ByteStream):
        new.read()
    return new


class OutboundFactory:
    """Builds (once) and hands out the product's outbound HTTP clients.

    Belongs to one event loop: the first loop that uses it.  Clients are created
    lazily, inside that loop; using the factory from another loop raises
    ``RuntimeError``.
    """

    def __init__(
        self, config: OutboundConfig | None = None, providers: ProviderRegistry | None = None
    ) -> None:
        self.config = config or OutboundConfig()
        self._providers = providers
        self._overrides: dict[str, str] = {}
        for host, base in self.config.host_overrides.items():
            entry = f"{host}={base}"
            key = _normalize_host(host)
            if not _valid_host_key(key):
                raise ValueError(f"host override {entry!r}: empty or malformed host")
            self._overrides[key] = _parse_base_url(base, entry=entry)
        self._override_targets: set[tuple[str, int]] = set()
        # Each override's base, split once (rewrite_url re-bases every request on it).
        self._override_parts = {key: urlsplit(base) for key, base in self._overrides.items()}
        # origin as written -> (re-based prefix or None, Host header, host): `hop`'s memo of
        # the routes that never change (route_is_fixed).
        self._origins: dict[str, tuple[str | None, str | None, str]] = {}
        for base in self._overrides.values():
            target = urlsplit(base)
            if target.hostname is None:
                raise ValueError(f"host override {base!r} has no host")
            self._override_targets.add(
                (_normalize_host(target.hostname), target.port or _DEFAULT_PORTS[target.scheme])
            )
        self._trusted: set[HostPort] = {_parse_trusted(e) for e in self.config.trusted_hosts}
        self._httpx: _SharedAsyncClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def providers(self) -> ProviderRegistry:
        """Provider governance for every call made through this factory: the one given, or
        the running loop's (shared by every run on it)."""
        if self._providers is None:
            self._providers = registry_for_loop()
        return self._providers

    # -- routing and trust -------------------------------------------------------

    def rewrite_url(self, url: str) -> tuple[str, bool]:
        """Re-base ``url`` on its host's override base; returns ``(url, overridden)``."""
        parts = urlsplit(url)
        if parts.hostname is None:
            return url, False
        target = self._override_parts.get(_normalize_host(parts.hostname))
        if target is None:
            return url, False
        path = target.path.rstrip("/") + (parts.path or "/")
        return urlunsplit((target.scheme, target.netloc, path, parts.query, parts.fragment)), True

    async def route(self, url: str) -> tuple[str, bool]:
        """Where one request hop really goes, after overrides and the SSRF guard.

        Returns ``(url, overridden)``; raises :class:`BlockedAddressError` for an IP
        literal that is not public. Names are checked by the session's resolver when it
        connects; override targets named directly are resolved and checked here, because
        that resolver lets them through.
        """
        rewritten, overridden = self.rewrite_url(url)
        if overridden:
            return rewritten, True
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"refusing URL without an http(s) scheme and host: {url!r}")
        host = _normalize_host(parts.hostname)
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        if self._is_trusted(host, port):
            return url, False
        ip = literal_address(host)
        if ip is not None:
            reason = address_refusal(ip)
            if reason is not None:
                raise BlockedAddressError(host, ip, reason)
        elif self._is_override_target(host, port):
            await self._resolver_for_loop().resolve_checked(
                host, port, family=socket.AF_UNSPEC, honour_trust=False
            )
        return url, False

    async def hop(self, url: str) -> Hop:
        """`route(url)` with what a request needs besides: the Host header and the host as
        written. Remembered per origin when the route never changes, so an HTTP block's
        thousands of URLs to one API are not each split, normalised and re-joined."""
        match = _ORIGIN.match(url)
        if match is not None:
            known = self._origins.get(match.group())
            rest = url[match.end() :]
            if known is not None and _plain_rest(rest):
                prefix, host_header, host = known
                if prefix is None:
                    return Hop(url, None, host)
                return Hop(
                    prefix + (rest if rest.startswith("/") else "/" + rest), host_header, host
                )
        target, overridden = await self.route(url)
        parts = urlsplit(url)
        host = parts.hostname or ""
        host_header = yarl.URL(target, encoded=True).raw_authority if overridden else None
        if match is not None and self.route_is_fixed(url):
            prefix = None
            if overridden:
                base = self._override_parts[_normalize_host(host)]
                prefix = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/"), "", ""))
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            self._origins[match.group()] = (prefix, host_header, host)
        return Hop(target, host_header, host)

    def route_is_fixed(self, url: str) -> bool:
        """Whether `route(url)` answers the same for the factory's life once it has answered
        without raising: overrides never change and trust only grows, so only names that
        are override targets (resolved and checked on every request) are not."""
        parts = urlsplit(url)
        if not parts.hostname:
            return False
        host = _normalize_host(parts.hostname)
        if host in self._overrides:
            return True
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        return literal_address(host) is not None or not self._is_override_target(host, port)

    def trust_base_url(self, url: str) -> None:
        """Trust an operator-configured base URL's host:port (e.g. OPENAI_BASE_URL)."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"base URL {url!r} must be an http:// or https:// URL with a host")
        self._trusted.add(
            (_normalize_host(parts.hostname), parts.port or _DEFAULT_PORTS[parts.scheme])
        )

    def _is_trusted(self, host: str, port: int) -> bool:
        host = _normalize_host(host)
        return (host, port) in self._trusted or (host, None) in self._trusted

    def _is_override_target(self, host: str, port: int) -> bool:
        return (_normalize_host(host), port) in self._override_targets

    def _session_trusts(self, host: str, port: int) -> bool:
        """What the shared session lets through unchecked (its resolver and connector)."""
        return self._is_trusted(host, port) or self._is_override_target(host, port)

    # -- clients ----------------------------------------------------------------

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise RuntimeError("OutboundFactory is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("OutboundFactory belongs to another event loop")
        return loop

    def _resolver_for_loop(self) -> GuardedResolver:
        self._check_loop()
        if self._resolver is None:
            self._resolver = GuardedResolver(self._session_trusts)
        return self._resolver

    def aiohttp_session(self) -> aiohttp.ClientSession:
        """The one shared session (guarded resolver, ``limit=max_connections``).

        Must be called inside the factory's event loop.  Used as-is by slack_sdk.
        """
        self._check_loop()
        if self._session is None:
            connector = GuardedConnector(
                is_trusted=self._session_trusts,
                resolver=self._resolver_for_loop(),
                limit=self.config.max_connections,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self.config.default_headers(),
                timeout=ClientTimeout(total=self.config.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # shared by all tenants: keep no cookies
                trust_env=False,
                request_class=EagerBodyRequest,  # a POST's body goes out with its headers
            )
        return self._session

    async def preconnect(self, url: str, count: int) -> int:
        """Open up to `count` connections to `url`'s origin (after host overrides and the SSRF
        guard) and leave them idle in the shared session's pool, for the requests about to
        go there: a loop's first items then send as soon as each request is built, instead of
        all waiting for connections that only complete once every item has built its own
        (~40 ms for the template's first ten leads). Idle connections already there count
        towards `count`. Sends nothing; a refused or failed connect is left to the request
        that follows to report. How many are ready."""
        count = min(count, self.config.max_connections)
        if count < 1:
            return 0
        try:  # refused literals raise here; names are checked by the resolver as they connect
            routed, _ = await self.route(url)
        except (BlockedAddressError, ValueError, OSError):
            return 0
        session = self.aiohttp_session()
        connector = session.connector
        target = yarl.URL(routed)
        if connector is None or not target.host:
            return 0
        # Keyed as the session's own requests are (same URL origin, TLS and SNI defaults).
        request = aiohttp.ClientRequest("GET", target.origin(), loop=asyncio.get_running_loop())
        held: list[typing.Any] = []

        async def connect() -> None:
            held.append(await connector.connect(request, [], session.timeout))

        try:  # all held at once, so each connect takes an idle one or opens its own
            await asyncio.gather(*(connect() for _ in range(count)), return_exceptions=True)
        finally:
            for connection in held:
                connection.release()  # idle in the pool (a cancel hands back what is open)
        return len(held)

    def httpx_client(self) -> httpx.AsyncClient:
        """The one shared httpx client (aiohttp transport behind :class:`GuardedTransport`).

        May be built outside a loop; its session is created on first request.
        """
        if self._closed:
            raise RuntimeError("OutboundFactory is closed")
        if self._httpx is None:
            transport = GuardedTransport(self, _AiohttpTransport(self.aiohttp_session))
            self._httpx = _SharedAsyncClient(
                transport=transport,
                follow_redirects=True,
                max_redirects=self.config.max_redirects,
                timeout=httpx.Timeout(self.config.timeout),
                headers=self.config.default_headers(),
                trust_env=False,  # env proxies would bypass the guarded transport
            )
            # httpx's default, and HTTP/1.1's without it (aiohttp keeps connections alive):
            # one header less for every model of the request to copy and scan.
            del self._httpx.headers["Connection"]
        return self._httpx

    def slack_base_url(self, base: str) -> str:
        """Slack API base URL after host overrides (for ``AsyncWebClient(base_url=...)``)."""
        return self.rewrite_url(base)[0]

    def openai_client(self, *, api_key: str, base_url: str) -> openai.AsyncOpenAI:
        """An ``AsyncOpenAI`` on the shared httpx client, with ``max_retries=0``.

        ``base_url`` is operator-configured: when a host override covers it, the
        transport routes (and trusts) every request; otherwise its host:port is trusted.
        The client keeps the original ``base_url`` so the override is applied per
        request rather than trusting the override target for everyone.
        """
        if not self.rewrite_url(base_url)[1]:
            self.trust_base_url(base_url)
        client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            default_headers=_SDK_PLATFORM_HEADERS,
            # openai accepts httpx and httpx2 clients at runtime; its annotation names httpx2 only.
            http_client=self.httpx_client(),  # type: ignore[arg-type]
        )
        # The SDK looks up the platform for those headers in a thread, on each client's first
        # request (a run's first LLM calls each waited for that hop, the first process-wide
        # also for `uname -p`), and keeps it here; its headers are left out, so it is never
        # sent: nothing to look up.
        client._platform = "Unknown"
        return client

    async def aclose(self) -> None:
        """Close the shared httpx client and aiohttp session; the factory is then closed."""
        self._closed = True
        client, self._httpx = self._httpx, None
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if client is not None:
            await client._factory_aclose()
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()
