"""The environment readers settings.py uses (klyntos/env_settings.py): ranges, spellings and
the messages that name the variable."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from klyntos.env_settings import (
    BYTES,
    env_bool,
    env_checked,
    env_float,
    env_int,
    env_optional_float,
)

NAME = "KLYNTOS_TEST_SETTING"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        (" On ", True),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("Off", False),
    ],
)
def test_a_boolean_takes_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, value: bool
) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_bool(NAME, not value) is value


@pytest.mark.parametrize("raw", ["yes-please", "2", "enabled", "y", "tru"])
def test_a_boolean_refuses_anything_else(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured) as refused:
        env_bool(NAME, False)
    assert str(refused.value) == f"{NAME} must be 1/0, true/false, yes/no or on/off, got {raw!r}"


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_unset_or_empty_is_the_default(monkeypatch: pytest.MonkeyPatch, raw: str | None) -> None:
    if raw is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, raw)
    assert env_bool(NAME, True) is True
    assert env_int(NAME, 7, 1, 10) == 7
    assert env_float(NAME, 2.5, 1, 10) == 2.5
    assert env_optional_float(NAME, 0, 10, what="a number of dollars", unset="none") is None
    assert env_checked(NAME, int) == (raw or "")


@pytest.mark.parametrize(("raw", "value"), [("1", 1), ("10", 10), (" 5 ", 5), ("1_000", None)])
def test_a_whole_number_in_range_is_read(
    monkeypatch: pytest.MonkeyPatch, raw: str, value: int | None
) -> None:
    monkeypatch.setenv(NAME, raw)
    if value is None:  # 1_000 is 1000: out of this range
        with pytest.raises(ImproperlyConfigured):
            env_int(NAME, 3, 1, 10)
    else:
        assert env_int(NAME, 3, 1, 10) == value


@pytest.mark.parametrize("raw", ["0", "11", "-1", "ten", "2.5", "1e1", ""])
def test_a_whole_number_out_of_range_or_not_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(NAME, raw)
    if not raw:
        assert env_int(NAME, 3, 1, 10) == 3
        return
    with pytest.raises(ImproperlyConfigured) as refused:
        env_int(NAME, 3, 1, 10)
    assert str(refused.value) == f"{NAME} must be a whole number from 1 to 10, got {raw!r}"


@pytest.mark.parametrize("raw", ["0", "-5", "3601", "nan", "inf", "-inf", "thirty", "30s"])
def test_seconds_out_of_range_or_not_a_number_are_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured) as refused:
        env_float(NAME, 30, 3, 3600)
    assert str(refused.value) == f"{NAME} must be a number of seconds from 3 to 3600, got {raw!r}"


@pytest.mark.parametrize(("raw", "value"), [("3", 3.0), ("3600", 3600.0), ("4.5", 4.5)])
def test_seconds_in_range_are_read(monkeypatch: pytest.MonkeyPatch, raw: str, value: float) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_float(NAME, 30, 3, 3600) == value


def test_the_message_says_what_zero_means_and_where_the_high_end_comes_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(NAME, "-1")
    with pytest.raises(ImproperlyConfigured) as refused:
        env_int(NAME, 3, 0, 100, zero="no limit")
    assert str(refused.value) == f"{NAME} must be a whole number from 0 (no limit) to 100, got '-1'"
    monkeypatch.setenv(NAME, "0.01")
    with pytest.raises(ImproperlyConfigured) as refused:
        env_float(NAME, 1, 0.05, 30, high_name="KLYNTOS_OTHER")
    assert str(refused.value) == (
        f"{NAME} must be a number of seconds from 0.05 to KLYNTOS_OTHER (30), got '0.01'"
    )
    monkeypatch.setenv(NAME, "0")
    with pytest.raises(ImproperlyConfigured) as refused:
        env_int(NAME, 3, 1, 1024**3, what=BYTES)
    assert str(refused.value) == f"{NAME} must be a number of bytes from 1 to 1073741824, got '0'"


def test_an_optional_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "2.5")
    assert env_optional_float(NAME, 0, 10, what="a number of dollars", unset="none") == 2.5
    monkeypatch.setenv(NAME, "lots")
    with pytest.raises(ImproperlyConfigured) as refused:
        env_optional_float(NAME, 0, 10, what="a number of dollars", unset="none")
    assert str(refused.value) == (
        f"{NAME} must be a number of dollars from 0 to 10 (or unset: none), got 'lots'"
    )


def test_a_checked_text_is_parsed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(text: str) -> object:
        if "=" not in text:
            raise ValueError(f"entry {text!r}: expected 'a=b'")
        return text

    monkeypatch.setenv(NAME, "a=b")
    assert env_checked(NAME, parse) == "a=b"
    monkeypatch.setenv(NAME, "ab")
    with pytest.raises(ImproperlyConfigured) as refused:
        env_checked(NAME, parse)
    assert str(refused.value) == f"{NAME}: entry 'ab': expected 'a=b'"
