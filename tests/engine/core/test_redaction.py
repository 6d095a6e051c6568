import json

import pytest

from engine.core.events import EventBus
from engine.core.redaction import MASK, Redactor


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
