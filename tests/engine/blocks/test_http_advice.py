"""Validation warns (never errs) when an HTTP block's URL names a loopback or private address
the SSRF guard refuses at run time, and says what to do instead."""

from __future__ import annotations

from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.ssrf import ADDRESS_HINT
from engine.core.validation import validate
from tests.engine.core.graphkit import block, graph


def outcome(url: str) -> tuple[list[Any], list[Any]]:
    result = validate(parse_graph(graph([block("get", "http", url=url)], [])), REGISTRY, [])
    return result.errors, result.warnings


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9000/v2/find", "loopback"),
        ("http://localhost/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("http://10.0.0.7/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://0x7f000001/x", "loopback"),
    ],
)
def test_a_refused_literal_address_is_a_warning_with_the_way_out(url: str, reason: str) -> None:
    errors, warnings = outcome(url)
    assert errors == []
    [warning] = warnings
    assert warning.field == "url" and f"a {reason} address" in warning.message
    assert ADDRESS_HINT in warning.message and "KLYNTOS_TRUSTED_HOSTS" in warning.message


@pytest.mark.parametrize(
    "url",
    [
        "https://api.clearbit.com/v2/companies/find",
        "https://<item.domain>/about",
        "<item.url>",
        "http://[::1/x",
    ],
)
def test_public_hosts_and_hosts_from_references_are_not_warned(url: str) -> None:
    assert outcome(url)[1] == []
