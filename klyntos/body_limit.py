"""Cap request bodies on webhook (and REST API) paths before Django or the server buffers them.

Two layers, same limit, same 413 response:

* `BodyLimitMiddleware` is plain ASGI. It rejects on `Content-Length` without reading the
  body and otherwise counts bytes as `receive()` yields them, so servers that stream the
  body to the application (uvicorn, hypercorn, the test client) never hold more than
  `max_bytes` of it.
* `install_daphne_body_limit()` exists because daphne does NOT stream: Twisted reads the
  whole body (into a temporary file past 100 kB) before daphne calls the application at
  all. The ASGI layer alone therefore only protects Django, not the server; the daphne
  guard answers 413 while the body is still arriving.

Neither layer reads Django settings, so both are usable and testable on their own.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_PATH_PREFIXES: tuple[str, ...] = ("/hooks/",)
INVALID_CONTENT_LENGTH = "invalid Content-Length header"

# Lingering close for the daphne guard (RFC 9112 section 9.6): after the 413 we half-close
# and discard what the client still sends for a bounded time, because closing a socket
# with unread input makes the kernel send RST, which can destroy the 413 in flight.
_LINGER_SECONDS = 2.0
_LINGER_MAX_BYTES = 4 * 1024 * 1024


def too_large_message(max_bytes: int, setting: str | None = None) -> str:
    """The 413's error; `setting` names what raises the limit (an environment variable)."""
    where = f" ({setting})" if setting else ""
    return f"request body is larger than {max_bytes} bytes{where}"


def error_response(status: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the JSON error both layers send."""
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The unread remainder of the body must never be parsed as a next request.
        (b"connection", b"close"),
    ]
    return headers, body


def parse_content_length(values: Iterable[bytes]) -> int | None:
    """The declared body length, None when absent; ValueError when unusable.

    Repeated headers are accepted only when identical (RFC 9112 section 6.3).
    """
    parsed: set[int] = set()
    for raw in values:
        value = raw.strip(b" \t")
        # bytes.isdigit() is ASCII-only, so "+1", "-1", "1.0", "" and "١" all fail.
        if not value.isdigit():
            raise ValueError(INVALID_CONTENT_LENGTH)
        parsed.add(int(value))
    if len(parsed) > 1:
        raise ValueError(INVALID_CONTENT_LENGTH)
    return parsed.pop() if parsed else None


def path_matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return path.startswith(prefixes)


def _check_config(max_bytes: int, path_prefixes: tuple[str, ...]) -> None:
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")
    # A bare string would be iterated character by character by str.startswith.
    if isinstance(path_prefixes, str) or not all(isinstance(p, str) for p in path_prefixes):
        raise TypeError("path_prefixes must be a tuple of strings")


class BodyLimitMiddleware:
    """ASGI middleware: 413 for webhook bodies over `max_bytes`; everything else untouched.

    `setting` names the limit's setting in the 413's message, so the caller knows what to raise.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        path_prefixes: tuple[str, ...] = DEFAULT_PATH_PREFIXES,
        setting: str | None = None,
    ) -> None:
        _check_config(max_bytes, path_prefixes)
        self.app = app
        self.max_bytes = max_bytes
        self.path_prefixes = tuple(path_prefixes)
        self.too_large = too_large_message(max_bytes, setting)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not path_matches(scope.get("path", ""), self.path_prefixes):
            await self.app(scope, receive, send)
            return

        try:
            declared = parse_content_length(
                value
                for name, value in scope.get("headers", [])
                if name.lower() == b"content-length"
            )
        except ValueError:
            await self._reject(send, 400, INVALID_CONTENT_LENGTH)
            return
        if declared is not None and declared > self.max_bytes:
            # Decided from the header alone: not one body byte is read.
            await self._reject(send, 413, self.too_large)
            return

        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # Client gone: nobody to answer, nothing for the app to do.
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            received += len(chunk)
            # Counted per chunk, so chunked uploads and lying Content-Length are capped too.
            if received > self.max_bytes:
                await self._reject(send, 413, self.too_large)
                return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            # After the body the app may wait for http.disconnect; that comes from the server.
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, status: int, message: str) -> None:
        headers, body = error_response(status, message)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


# --- daphne ------------------------------------------------------------------------------


def _raw_http_response(status: int, reason: str, message: str) -> bytes:
    headers, body = error_response(status, message)
    head = f"HTTP/1.1 {status} {reason}\r\n".encode()
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


Rule = tuple[tuple[str, ...], int] | tuple[tuple[str, ...], int, str | None]


def _full_rule(rule: Rule) -> tuple[tuple[str, ...], int, str | None]:
    if len(rule) == 3:
        return (tuple(rule[0]), rule[1], rule[2])
    return (tuple(rule[0]), rule[1], None)


def install_daphne_body_limit(
    *,
    max_bytes: int,
    path_prefixes: tuple[str, ...] = DEFAULT_PATH_PREFIXES,
    setting: str | None = None,
    more: Iterable[Rule] = (),
) -> None:
    """Make daphne answer 413 while an oversized webhook body is still arriving.

    `more` adds (path prefixes, max bytes[, setting]) rules for other paths (the REST API); the
    first rule whose prefix matches a path decides its limit. `setting` (and a rule's third
    member) names the limit's setting in the 413's message.

    Swaps `daphne.http_protocol.WebRequest` (which daphne's HTTPFactory instantiates per
    request) for a subclass; call it once at startup in the daphne process, e.g. from
    the ASGI module, after `daphne.server` has been imported (the daphne CLI and its
    runserver do that before loading the application). Calling it again replaces the
    limits. HTTP/2 streams are left alone (no request line to match); the ASGI middleware
    still applies to them.
    """
    rules = [(tuple(path_prefixes), max_bytes, setting), *(_full_rule(rule) for rule in more)]
    for prefixes_, limit_, _ in rules:
        _check_config(limit_, prefixes_)
    from daphne import http_protocol  # Lazy: the ASGI middleware must not need Twisted.

    base: Any = getattr(http_protocol.WebRequest, "klyntos_base", http_protocol.WebRequest)
    prefixes = tuple(p for rule_prefixes, _, _ in rules for p in rule_prefixes)
    # Per rule: two rules with the same limit may still name different settings.
    responses = [
        _raw_http_response(413, "Content Too Large", too_large_message(limit, name))
        for _, limit, name in rules
    ]
    strictest = min(range(len(rules)), key=lambda index: rules[index][1])

    def rule_for(path: str | None) -> int | None:
        """The index of the rule that limits `path`, None when none does."""
        if path is None:  # daphne answers 400 for these anyway: limit them too
            return strictest
        return next((i for i, (ps, _, _) in enumerate(rules) if path_matches(path, ps)), None)

    class BodyLimitedWebRequest(base):
        klyntos_base = base
        klyntos_max_bytes = max_bytes
        klyntos_path_prefixes = prefixes
        klyntos_rules = tuple(rules)

        _klyntos_guarded = False
        _klyntos_rejected = False
        _klyntos_received = 0
        _klyntos_limit = max_bytes
        _klyntos_response = responses[0]
        _klyntos_path: str | None = None

        def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
            # Called once all headers are in and before any body byte is read.
            raw_target = getattr(self.channel, "_path", None)
            if isinstance(raw_target, bytes):
                try:
                    path = unquote(raw_target.split(b"?", 1)[0].decode("ascii"))
                except UnicodeDecodeError:
                    path = None
                rule = rule_for(path)
                self._klyntos_guarded = rule is not None
                self._klyntos_limit = rules[rule][1] if rule is not None else max_bytes
                self._klyntos_response = responses[rule if rule is not None else 0]
                self._klyntos_path = path
            if self._klyntos_guarded and length is not None and length > self._klyntos_limit:
                # No 100 Continue after our 413; no temporary file for a body we refuse.
                self.requestHeaders.removeHeader(b"Expect")
                self.content = io.BytesIO()
                self._klyntos_reject()
                return
            super().gotLength(length)

        def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
            if self._klyntos_rejected:
                return
            if self._klyntos_guarded:
                self._klyntos_received += len(data)
                if self._klyntos_received > self._klyntos_limit:
                    self._klyntos_reject()
                    return
            super().handleContentChunk(data)

        def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
            # The rest of a rejected body can still complete within the same read.
            if self._klyntos_rejected:
                return
            super().requestReceived(command, path, version)

        def _klyntos_reject(self) -> None:
            self._klyntos_rejected = True
            channel: Any = self.channel
            transport: Any = channel.transport
            peer = transport.getPeer()
            logger.warning(
                "413: body for %r from %s is over %d bytes",
                self._klyntos_path,
                getattr(peer, "host", peer),
                self._klyntos_limit,
            )
            transport.write(self._klyntos_response)

            discarded = 0

            def discard(data: bytes) -> None:
                nonlocal discarded
                discarded += len(data)
                if discarded > _LINGER_MAX_BYTES:
                    transport.abortConnection()

            # Same trick Twisted uses for data after a non-persistent request: drop it.
            channel.dataReceived = discard
            channel.lineReceived = lambda line: None
            # A registered producer would keep the half-close below from happening.
            transport.unregisterProducer()
            lose_write = getattr(transport, "loseWriteConnection", None)
            if lose_write is None:
                transport.loseConnection()
                return
            lose_write()

            def give_up() -> None:
                if transport.connected:
                    transport.abortConnection()

            call_later: Any = getattr(channel, "callLater", None)
            if call_later is None:
                from twisted.internet import reactor

                call_later = reactor.callLater
            call_later(_LINGER_SECONDS, give_up)

    http_protocol.WebRequest = BodyLimitedWebRequest
