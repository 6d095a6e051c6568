"""Pure checks for inbound webhook requests: JSON body parsing and HMAC signatures.

No Django here: the view maps `WebhookRequestError.status` / `.message` to a response. The
REST API parses its bodies with the same `load_json` (builder/parsers.py).

Signature header format (Stripe-style): `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` where
each v1 is HMAC-SHA256(secret, b"<t>." + raw body). Several v1 entries let a sender sign
with the old and the new secret while a secret is being rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from typing import Any, NoReturn

DEFAULT_TOLERANCE = 300
CALL_DEPTH_DIGITS = 6

# A JSON string (closed, or running to the end of malformed input, so the pattern can
# never fail once started and the scan stays linear) or a single bracket.
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# PostgreSQL's jsonb cannot store NUL (\u0000) or a lone UTF-16 surrogate ("\ud800" decodes to
# one; a valid pair decodes to one astral character and is fine).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Valid JSON text decoded from UTF-8 holds neither literally (the decoder refuses encoded
# surrogates, the parser raw control characters): they only come from `\u` escapes, so a body
# without such an escape is not walked value by value (a 1.6 MB graph took ~0.5 s).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]{1,40}")
_MAX_TIMESTAMP_DIGITS = 12


class WebhookRequestError(Exception):
    """A request the webhook endpoint refuses; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"WebhookRequestError({self.status!r}, {self.message!r})"


def _bad_request(message: str) -> NoReturn:
    raise WebhookRequestError(400, message)


def _is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return True
    top, _, subtype = media_type.partition("/")
    # Structured-syntax suffix (RFC 6839), e.g. application/cloudevents+json.
    return top == "application" and subtype.endswith("+json") and subtype != "+json"


def nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether arrays/objects in `text` nest deeper than `max_depth`.

    Runs on the raw text before json.loads, so a 100,000-deep `[[[[` is refused after
    max_depth + 1 brackets instead of recursing in the decoder (RecursionError).
    """
    depth = 0
    for match in _STRUCTURE.finditer(text):
        bracket = match.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > max_depth:
                return True
        elif bracket in ("]", "}"):
            depth -= 1  # Unbalanced closers are json.loads' problem, reported with position.
    return False


def _reject_constant(name: str) -> NoReturn:
    _bad_request(f"JSON numbers must be finite ({name} is not allowed)")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e400 parses to inf: the same thing as Infinity.
        _reject_constant(literal)
    return value


def _step(key: str) -> str:
    """A path step for an error message; escaped to ASCII, because the message is echoed in
    a response and the key may hold the very character being refused."""
    if _PLAIN_KEY.fullmatch(key):
        return f".{key}"
    return f"[{json.dumps(key[:40])}]"


def _unstorable_string(value: Any) -> tuple[str, str] | None:
    """(where, what) for a string, object key or value, that jsonb cannot store."""
    stack: list[tuple[str, Any]] = [("body", value)]
    while stack:
        where, current = stack.pop()
        texts: list[tuple[str, str]] = []
        if isinstance(current, str):
            texts.append((where, current))
        elif isinstance(current, dict):
            for key, item in current.items():
                texts.append((f"a key of {where}", key))
                stack.append((where + _step(key), item))
        elif isinstance(current, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(current))
        for place, text in texts:
            found = _UNSTORABLE.search(text)
            if found:
                if found.group() == "\x00":
                    return place, "a NUL character (\\u0000)"
                return place, "an unpaired surrogate (\\ud800-\\udfff)"
    return None


def load_json(raw: bytes, *, max_depth: int) -> Any:
    """Decode a JSON body: UTF-8, nested at most `max_depth`, finite numbers, and strings
    PostgreSQL can store. Raises WebhookRequestError(400) saying what is wrong."""
    if max_depth < 0:
        raise ValueError("max_depth must be >= 0")
    if not raw.strip(b" \t\r\n"):
        _bad_request("empty request body")
    try:
        # JSON is UTF-8 (RFC 8259); a leading BOM may be ignored, so it is.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _bad_request(f"request body is not valid UTF-8 (byte {exc.start})")
    if nesting_exceeds(text, max_depth):
        _bad_request(f"JSON nesting deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        _bad_request(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError:
        # int() refuses integers over sys.get_int_max_str_digits() (4300) digits.
        _bad_request("JSON number is too large")
    except RecursionError:  # Only reachable with a max_depth near the recursion limit.
        _bad_request(f"JSON nesting deeper than {max_depth} levels")
    unstorable = _unstorable_string(value) if _UNSTORABLE_ESCAPE.search(text) else None
    if unstorable is not None:
        where, what = unstorable
        _bad_request(f"JSON strings must not contain {what}; found in {where}")
    return value


def parse_json_body(
    raw: bytes, *, content_type: str | None, max_depth: int, content_encoding: str | None = None
) -> Any:
    """Decode a webhook body, or raise WebhookRequestError (415 or 400)."""
    if max_depth < 0:
        raise ValueError("max_depth must be >= 0")
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("", "identity"):
        # Read as JSON, a gzip body would fail as "malformed JSON"; decompressed, its size
        # limit would be the compressed size. Say what to do instead.
        shown = encoding[:40].encode("ascii", "replace").decode()
        raise WebhookRequestError(
            415, f"Content-Encoding {shown!r} is not accepted: send the body uncompressed"
        )
    if not _is_json_media_type(content_type):
        raise WebhookRequestError(415, "expected application/json")
    return load_json(raw, max_depth=max_depth)


def _digest(secret: str, raw: bytes, timestamp: int) -> str:
    if not secret:
        # An empty key would make signatures forgeable by anyone: fail closed, loudly.
        raise ValueError("webhook secret must not be empty")
    message = f"{timestamp}.".encode() + raw
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_payload(secret: str, raw: bytes, timestamp: int) -> str:
    """The signature header value a sender attaches: `t=<unix>,v1=<hex>`."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise TypeError("timestamp must be a non-negative int (unix seconds)")
    return f"t={timestamp},v1={_digest(secret, raw, timestamp)}"


def _unauthorized(message: str) -> NoReturn:
    raise WebhookRequestError(401, message)


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            _unauthorized("malformed signature header")
        if key == "t":
            # isascii: str.isdigit() also accepts digits like "²" that int() refuses.
            digits_ok = value.isascii() and value.isdigit()
            if timestamp is not None or not digits_ok or len(value) > _MAX_TIMESTAMP_DIGITS:
                _unauthorized("malformed signature header")
            timestamp = int(value)
        elif key == "v1":
            # Hex only: compare_digest raises TypeError on non-ASCII str.
            if not _HEX_SHA256.fullmatch(value.lower()):
                _unauthorized("malformed signature header")
            signatures.append(value.lower())
        # Other schemes (v0, later versions) are ignored so senders can add them.
    if timestamp is None or not signatures:
        _unauthorized("malformed signature header")
    return timestamp, signatures


def _window(tolerance: int) -> str:
    if tolerance % 60 == 0:
        return f"{tolerance // 60}-minute"
    return f"{tolerance}-second"


def verify_signature(
    secret: str,
    header: str | None,
    raw: bytes,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> tuple[int, str]:
    """Raise WebhookRequestError(401) unless `header` signs `raw` with `secret` recently.

    Returns the signed timestamp and the signature (hex) of this delivery: a verbatim
    replay has the same one, which is how the endpoint recognises it."""
    if header is None or not header.strip():
        _unauthorized("missing signature header")
    timestamp, signatures = _parse_signature_header(header)
    # The timestamp is signed too, so a captured request cannot be replayed later.
    if abs(now - timestamp) > tolerance:
        _unauthorized(f"signature timestamp outside the {_window(tolerance)} window")
    expected = _digest(secret, raw, timestamp)
    # Check every entry rather than stopping at the first match: no timing hint about
    # which of the rotated secrets matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        _unauthorized("signature does not match")
    return timestamp, expected


def parse_call_depth(header: str | None, *, max_depth: int) -> int:
    """The `Klyntos-Call-Depth` of a request (0 when absent): how many runs led to it.

    Runs send their depth + 1 on every outbound call, so a workflow that calls its own
    webhook is refused (400) past `max_depth` instead of recursing without end.
    """
    if header is None or not header.strip():
        return 0
    value = header.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > CALL_DEPTH_DIGITS:
        _bad_request("Klyntos-Call-Depth must be a non-negative integer")
    depth = int(value)
    if depth > max_depth:
        _bad_request(
            f"Klyntos-Call-Depth {depth} is over the limit of {max_depth} runs calling runs"
            " (KLYNTOS_MAX_CALL_DEPTH): does a workflow call its own webhook?"
        )
    return depth
