"""builder.webhook_security: body parsing and signatures, every refusal branch."""

from __future__ import annotations

import hashlib
import hmac
import sys
import time

import pytest

from builder.webhook_security import (
    WebhookRequestError,
    nesting_exceeds,
    parse_json_body,
    sign_payload,
    verify_signature,
)

JSON = "application/json"
SECRET = "whsec_test"
NOW = 1_700_000_000


def refused(status: int) -> pytest.RaisesExc[WebhookRequestError]:
    return pytest.raises(WebhookRequestError, check=lambda e: e.status == status)


def parse(raw: bytes, content_type: str | None = JSON, max_depth: int = 8) -> object:
    return parse_json_body(raw, content_type=content_type, max_depth=max_depth)


# --- parse_json_body -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/cloudevents+json",
        "application/vnd.api+json; charset=utf-8",
    ],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    assert parse(b'{"a": [1, 2.5, "x"], "b": null}', content_type) == {
        "a": [1, 2.5, "x"],
        "b": None,
    }


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
        "application/+json",
        "application/jsonp",
        "text/plain+json",
        "multipart/form-data; boundary=x",
    ],
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with refused(415) as info:
        parse(b"{}", content_type)
    assert info.value.message == "expected application/json"


@pytest.mark.parametrize("raw", [b"", b"  \r\n\t "])
def test_empty_body_is_400(raw: bytes) -> None:
    with refused(400) as info:
        parse(raw)
    assert info.value.message == "empty request body"


def test_invalid_utf8_is_400() -> None:
    with refused(400) as info:
        parse(b'{"name": "caf\xe9"}')
    assert info.value.message == "request body is not valid UTF-8 (byte 13)"


def test_utf8_and_a_leading_bom_are_fine() -> None:
    assert parse('{"name": "café ✓"}'.encode()) == {"name": "café ✓"}
    assert parse(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"a": 1,}',
            "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 9",
        ),
        (b'{\n  "a": 1\n  "b": 2\n}', "malformed JSON: Expecting ',' delimiter at line 3 column 3"),
        (b"[1, 2", "malformed JSON: Expecting ',' delimiter at line 1 column 6"),
        (b"{} {}", "malformed JSON: Extra data at line 1 column 4"),
        (b"]]]", "malformed JSON: Expecting value at line 1 column 1"),
        (b"'single'", "malformed JSON: Expecting value at line 1 column 1"),
    ],
)
def test_malformed_json_is_400_with_position(raw: bytes, message: str) -> None:
    with refused(400) as info:
        parse(raw)
    assert info.value.message == message


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


def test_depth_exactly_at_the_limit_is_accepted() -> None:
    assert parse(nested(8), max_depth=8) == [[[[[[[[]]]]]]]]
    mixed = b'{"a": [{"b": [{"c": [{"d": [1]}]}]}]}'  # 8 levels, objects and arrays
    assert parse(mixed, max_depth=8)["a"][0]["b"][0]["c"][0]["d"] == [1]  # type: ignore[index]


def test_one_level_deeper_is_400() -> None:
    with refused(400) as info:
        parse(nested(9), max_depth=8)
    assert info.value.message == "JSON nesting deeper than 8 levels"
    with refused(400):
        parse(b'{"a": [{"b": [{"c": [{"d": [{}]}]}]}]}', max_depth=8)


def test_scalars_are_depth_zero() -> None:
    assert parse(b'"x"', max_depth=0) == "x"
    with refused(400):
        parse(b"[]", max_depth=0)


def test_siblings_do_not_add_up() -> None:
    assert parse(b"[" + b",".join([nested(7)] * 1000) + b"]", max_depth=8)[999] == [[[[[[[]]]]]]]  # type: ignore[index]


def test_hundred_thousand_deep_payload_is_refused_cheaply() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # Would make any recursion over the payload blow up.
    try:
        # This thread's CPU, not the clock: a loaded machine may pause it for longer.
        started = time.thread_time()
        with refused(400) as info:
            parse(deep, max_depth=32)
        elapsed = time.thread_time() - started
    finally:
        sys.setrecursionlimit(limit)
    assert info.value.message == "JSON nesting deeper than 32 levels"
    assert elapsed < 0.05
    # The same payload unbalanced (never closed) is refused the same way.
    with refused(400):
        parse(b'{"a":' * 100_000, max_depth=32)


def test_brackets_inside_strings_do_not_count() -> None:
    raw = b'{"text": "[[[[{{{{ \\" [[[[ \\\\", "k[{": "]]]]}}}}"}'
    assert parse(raw, max_depth=1) == {"text": '[[[[{{{{ " [[[[ \\', "k[{": "]]]]}}}}"}
    # A string closes after an escaped backslash: the brackets after it are real.
    assert nesting_exceeds('["\\\\", [[]]]', 2) is True
    assert nesting_exceeds('["\\\\", [[]]]', 3) is False


def test_unterminated_string_is_a_malformed_not_a_depth_error() -> None:
    with refused(400) as info:
        parse(b'{"a": "' + b"[" * 1000, max_depth=8)
    assert info.value.message.startswith("malformed JSON: Unterminated string")


def test_a_long_string_of_escapes_scans_in_linear_time() -> None:
    started = time.perf_counter()
    assert nesting_exceeds('"\\"' * 300_000 + "\\", 8) is False
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b'{"x": NaN}', "NaN"),
        (b"[Infinity]", "Infinity"),
        (b"[-Infinity]", "-Infinity"),
        (b"[1e400]", "1e400"),
        (b"[-1.5e999]", "-1.5e999"),
    ],
)
def test_non_finite_numbers_are_400(raw: bytes, name: str) -> None:
    with refused(400) as info:
        parse(raw)
    assert info.value.message == f"JSON numbers must be finite ({name} is not allowed)"


def test_big_finite_numbers_are_fine_and_huge_integers_are_400() -> None:
    assert parse(b"[1e308, -2.5e-300, 12345678901234567890]") == [
        1e308,
        -2.5e-300,
        12345678901234567890,
    ]
    with refused(400) as info:
        parse(b"[" + b"9" * 5000 + b"]")
    assert info.value.message == "JSON number is too large"


def test_negative_max_depth_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse(b"1", max_depth=-1)


# --- signatures --------------------------------------------------------------------------------

BODY = b'{"event": "lead.created", "id": 42}'


def test_sign_payload_format_and_value() -> None:
    header = sign_payload(SECRET, BODY, NOW)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_good_signature_passes() -> None:
    verify_signature(SECRET, sign_payload(SECRET, BODY, NOW), BODY, now=NOW)
    # Within the window either way, including its edges.
    verify_signature(SECRET, sign_payload(SECRET, BODY, NOW), BODY, now=NOW + 300)
    verify_signature(SECRET, sign_payload(SECRET, BODY, NOW), BODY, now=NOW - 300)
    # Whitespace around entries and upper-case hex are tolerated.
    t, v1 = sign_payload(SECRET, BODY, NOW).split(",")
    verify_signature(SECRET, f" {t} , {v1.upper().replace('V1=', 'v1=')} ", BODY, now=NOW)


def test_wrong_secret_is_401() -> None:
    with refused(401) as info:
        verify_signature(SECRET, sign_payload("other-secret", BODY, NOW), BODY, now=NOW)
    assert info.value.message == "signature does not match"


def test_tampered_body_or_timestamp_is_401() -> None:
    header = sign_payload(SECRET, BODY, NOW)
    with refused(401):
        verify_signature(SECRET, header, BODY + b" ", now=NOW)
    with refused(401) as info:
        verify_signature(SECRET, header.replace("t=1700000000", "t=1700000001"), BODY, now=NOW)
    assert info.value.message == "signature does not match"


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_stale_or_future_timestamp_is_401(skew: int) -> None:
    header = sign_payload(SECRET, BODY, NOW)
    with refused(401) as info:
        verify_signature(SECRET, header, BODY, now=NOW + skew)
    assert info.value.message == "signature timestamp outside the 5-minute window"


def test_custom_tolerance() -> None:
    header = sign_payload(SECRET, BODY, NOW)
    verify_signature(SECRET, header, BODY, now=NOW + 60, tolerance=60)
    with refused(401) as info:
        verify_signature(SECRET, header, BODY, now=NOW + 61, tolerance=60)
    assert info.value.message == "signature timestamp outside the 1-minute window"
    with refused(401) as info:
        verify_signature(SECRET, header, BODY, now=NOW + 31, tolerance=30)
    assert info.value.message == "signature timestamp outside the 30-second window"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_401(header: str | None) -> None:
    with refused(401) as info:
        verify_signature(SECRET, header, BODY, now=NOW)
    assert info.value.message == "missing signature header"


GOOD_HEX = "a" * 64


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "sha256=abc",
        f"v1={GOOD_HEX}",  # no timestamp
        "t=1700000000",  # no signature
        f"t=abc,v1={GOOD_HEX}",
        f"t=-5,v1={GOOD_HEX}",
        f"t=1.5,v1={GOOD_HEX}",
        f"t=²,v1={GOOD_HEX}",
        f"t={'9' * 5000},v1={GOOD_HEX}",
        f"t=1700000000,t=1700000000,v1={GOOD_HEX}",
        "t=1700000000,v1=zz",
        f"t=1700000000,v1={'é' * 64}",
        f"t=1700000000,v1={GOOD_HEX}0",
        f"t=1700000000,v1={GOOD_HEX},junk",
    ],
)
def test_unparseable_header_is_401(header: str) -> None:
    with refused(401) as info:
        verify_signature(SECRET, header, BODY, now=NOW)
    assert info.value.message == "malformed signature header"


def test_rotation_any_of_several_v1_values_passes() -> None:
    old = sign_payload("old-secret", BODY, NOW).split(",v1=")[1]
    new = sign_payload("new-secret", BODY, NOW).split(",v1=")[1]
    header = f"t={NOW},v1={old},v1={new}"
    verify_signature("old-secret", header, BODY, now=NOW)
    verify_signature("new-secret", header, BODY, now=NOW)
    with refused(401):
        verify_signature("third-secret", header, BODY, now=NOW)
    # Unknown schemes next to v1 are ignored, not fatal.
    verify_signature("new-secret", f"t={NOW},v0=whatever,v1={new}", BODY, now=NOW)


def test_verify_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    header = sign_payload(SECRET, BODY, NOW)
    verify_signature(SECRET, f"{header},v1={GOOD_HEX}", BODY, now=NOW)
    assert len(compared) == 2  # every candidate, even after a match


def test_empty_secret_fails_closed() -> None:
    with pytest.raises(ValueError):
        sign_payload("", BODY, NOW)
    with pytest.raises(ValueError):
        verify_signature("", f"t={NOW},v1={GOOD_HEX}", BODY, now=NOW)


@pytest.mark.parametrize("timestamp", [1.5, True, -1, "1700000000"])
def test_sign_payload_needs_unix_seconds(timestamp: object) -> None:
    with pytest.raises(TypeError):
        sign_payload(SECRET, BODY, timestamp)  # type: ignore[arg-type]


# --- misc ----------------------------------------------------------------------------------------


def test_error_carries_status_and_message() -> None:
    error = WebhookRequestError(415, "expected application/json")
    assert (error.status, error.message, str(error)) == (
        415,
        "expected application/json",
        "expected application/json",
    )


# --- strings PostgreSQL's jsonb cannot store -----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            rb'{"a": "a\u0000b"}',
            "JSON strings must not contain a NUL character (\\u0000); found in body.a",
        ),
        (
            rb'["ok", "\ud800"]',
            "JSON strings must not contain an unpaired surrogate (\\ud800-\\udfff); "
            "found in body[1]",
        ),
        (
            rb'{"x": {"\u0000k": 1}}',
            "JSON strings must not contain a NUL character (\\u0000); found in a key of body.x",
        ),
        (
            rb'{"le ads": [{"n": "\udfff tail"}]}',
            "JSON strings must not contain an unpaired surrogate (\\ud800-\\udfff); "
            'found in body["le ads"][0].n',
        ),
        (
            rb'{"\ud800": {"\ud800": "\u0000"}}',
            "JSON strings must not contain an unpaired surrogate (\\ud800-\\udfff); "
            "found in a key of body",
        ),
    ],
)
def test_nul_and_lone_surrogates_are_400(raw: bytes, message: str) -> None:
    with refused(400) as info:
        parse(raw)
    assert info.value.message == message
    info.value.message.encode("utf-8")  # the message itself is always printable and storable


def test_escaped_backslashes_and_surrogate_pairs_are_fine() -> None:
    assert parse(rb'["a\\u0000", "\ud83d\ude00"]') == ["a\\u0000", "\U0001f600"]


def test_load_json_applies_the_same_rules_without_a_content_type() -> None:
    from builder.webhook_security import load_json

    assert load_json(b'{"a": [1]}', max_depth=2) == {"a": [1]}
    with refused(400):
        load_json(b"[" * 100_000, max_depth=32)
    with refused(400):
        load_json(rb'"\u0000"', max_depth=32)
