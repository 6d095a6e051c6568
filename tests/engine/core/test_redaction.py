import json

import pytest

from engine.core.events import EventBus
from engine.core.redaction import MASK, Redactor
from tests.engine.core.secret_forms import escaped_forms


@pytest.mark.parametrize(
    "secret", ['tok"en-1234', "tok\\en-5678", "line\nbreak-99", "tab\there-42", "plain-secret-1"]
)
def test_secrets_with_characters_json_escapes_are_still_masked(secret: str) -> None:
    redactor = Redactor([secret])
    payload = {"output": {"q": secret, "list": [f"x {secret} y"]}, "n": 3}
    assert redactor.value(payload) == {"output": {"q": MASK, "list": [f"x {MASK} y"]}, "n": 3}


def test_percent_encoded_secrets_are_masked_too() -> None:
    redactor = Redactor(["ab/cd+ef=="])
    assert (
        redactor.text("GET https://x.io/ab%2Fcd%2Bef%3D%3D failed")
        == f"GET https://x.io/{MASK} failed"
    )


def test_short_and_empty_values_are_never_registered() -> None:
    redactor = Redactor(["", "abc"])
    assert not redactor and redactor.value({"a": "abc"}) == {"a": "abc"}


def test_event_payloads_are_masked_by_value() -> None:
    seen = []
    bus = EventBus(seen.append, Redactor(['s3"cret-value']))
    bus.emit(
        "step.finished",
        item="",
        block="b",
        name="b",
        output={"echo": 's3"cret-value'},
        error='bad s3"cret-value',
    )
    assert seen[0].data["output"] == {"echo": MASK} and seen[0].data["error"] == f"bad {MASK}"


def test_a_plain_value_comes_back_as_itself_and_a_string_is_masked_directly() -> None:
    redactor = Redactor(["plain-secret-1"])
    untouched = ["no secret here", 0, 2.5, True, None, [], {}, {"a": ["b"]}]
    for value in untouched:
        assert redactor.value(value) is value
    assert redactor.value("x plain-secret-1 y") == f"x {MASK} y"
    assert redactor.value("x plain-secret-1%") == f"x {MASK}%"
    assert redactor.value(["plain-secret-1"]) == [MASK]


def test_a_value_written_out_already_is_scanned_from_its_text_and_then_forgotten() -> None:
    redactor = Redactor(["plain-secret-1"])
    clean, leaky = {"a": ["b"]}, {"a": ["x plain-secret-1"]}
    for value in (clean, leaky):
        redactor.remember_json(value, json.dumps(value, ensure_ascii=False, default=str))
    assert redactor.value(clean) is clean
    assert redactor.value(leaky) == {"a": [f"x {MASK}"]}
    assert not redactor._texts  # each text is read once
    for n in range(3000):  # texts never read are dropped, not kept forever
        redactor.remember_json({"n": n}, "{}")
    assert len(redactor._texts) <= 1024


# --- a secret's escaped and transformed forms (defect 6) ---------------------------------

MSEC = "Mx/9 q+Z=é\\w'\"%2F<b>&"


@pytest.mark.parametrize("form", list(escaped_forms(MSEC)))
def test_every_escaped_form_of_a_secret_is_masked_in_text(form: str) -> None:
    escaped = escaped_forms(MSEC)[form]
    assert escaped != MSEC or form == "as is"
    redactor = Redactor([MSEC])
    assert redactor.text(f"upstream said <<{escaped}>> ok") == f"upstream said <<{MASK}>> ok"
    assert redactor.contains_secret(f"x{escaped}x")


@pytest.mark.parametrize("form", list(escaped_forms(MSEC)))
def test_every_escaped_form_inside_a_value_passes_the_pre_check(form: str) -> None:
    escaped = escaped_forms(MSEC)[form]
    redactor = Redactor([MSEC, "other-secret-value"])
    payload = {"message": {"text": f"posted: {escaped}", "ok": True}, "n": [1, 2]}
    assert redactor.value(payload) == {
        "message": {"text": f"posted: {MASK}", "ok": True},
        "n": [1, 2],
    }


def test_the_error_a_repr_writes_is_masked_whichever_quotes_it_picks() -> None:
    with_both_quotes = "Mx/9 q+Z=é\\w'\"%2F<b>"
    only_single = "it's-a-s3cret\\path"
    redactor = Redactor([with_both_quotes, only_single])
    for secret in (with_both_quotes, only_single):
        for message in (f"host: {secret!r}", f"{[secret]!r}", f"got {ValueError(secret)!r}"):
            assert secret not in redactor.text(message)
            assert MASK in redactor.text(message), message


def test_an_ascii_json_echo_of_a_secret_is_masked() -> None:
    secret = "clé-secrète-42"
    echoed = json.dumps({"you sent": {"key": secret}})  # ensure_ascii: \u00e9
    assert "\\u00e9" in echoed
    masked = Redactor([secret]).text(echoed)
    assert json.loads(masked) == {"you sent": {"key": MASK}}


def test_a_plain_token_has_one_form_and_masks_as_before() -> None:
    redactor = Redactor(["sk-live-0123456789abcdef"])
    assert redactor.longest == len("sk-live-0123456789abcdef")
    assert redactor.text("key sk-live-0123456789abcdef.") == f"key {MASK}."


def test_a_secret_inside_another_is_masked_whole_in_every_form() -> None:
    outer, inner = "outer<x>-inner-key-99", "inner-key-99"
    redactor = Redactor([inner, outer])
    assert redactor.text(f"a {outer} b") == f"a {MASK} b"
    assert redactor.text("a outer&lt;x&gt;-inner-key-99 b") == f"a {MASK} b"


def test_the_excerpt_of_a_text_holding_an_escaped_form_is_masked() -> None:
    escaped = escaped_forms(MSEC)["slack"]
    text = "a" * 30 + escaped + "b" * 100
    out = Redactor([MSEC]).excerpt(text, 40)
    assert "&lt;b&gt;" not in out and out.startswith("a" * 30 + MASK[:10])


def test_forms_are_computed_once_per_set_of_secrets() -> None:
    first, second = Redactor([MSEC, "abcd-1234"]), Redactor(["abcd-1234", MSEC])
    assert first._secrets is second._secrets  # noqa: SLF001 - the cached forms
