"""The Response block: what it renders, which headers it may set, where it may sit."""

from __future__ import annotations

from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from tests.engine.core.graphkit import block, graph, run_graph


def errors_of(graph_json: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    result = validate(parse_graph(graph_json), REGISTRY, [])
    return [(e.block_name, e.field, e.message) for e in result.errors]


def responding(**config: Any) -> dict[str, Any]:
    return graph(
        [
            block("webhook", "webhook"),
            block("shape", "transform", input="<webhook.body>", expression="{n: n, tags: tags}"),
            block("answer", "response", **config),
        ],
        [("webhook", "shape"), ("shape", "answer")],
    )


async def test_it_renders_status_headers_and_a_body_whose_references_keep_their_type() -> None:
    config = {
        "status": 201,
        "headers": {"Location": "/things/<shape.result.n>", "X-Count": "<shape.result.n>"},
        "body": {
            "n": "<shape.result.n>",
            "tags": "<shape.result.tags>",
            "note": "n=<shape.result.n>",
        },
    }
    assert errors_of(responding(**config)) == []
    outcome, _ = await run_graph(responding(**config), {"n": 7, "tags": ["a", "b"]})
    assert outcome.status == "succeeded"
    assert outcome.outputs["answer"] == {
        "status": 201,
        "headers": {"Location": "/things/7", "X-Count": "7"},
        "body": {"n": 7, "tags": ["a", "b"], "note": "n=7"},
    }


async def test_defaults_are_200_no_headers_and_no_body() -> None:
    outcome, _ = await run_graph(responding(), {"n": 1, "tags": []})
    assert outcome.outputs["answer"] == {"status": 200, "headers": {}, "body": None}


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Set-Cookie": "a=b"}, "'Set-Cookie' cannot be set"),
        ({"Access-Control-Allow-Origin": "*"}, "cannot be set"),
        ({"Content-Security-Policy": "none"}, "cannot be set"),
        ({"X-Frame-Options": "ALLOW"}, "cannot be set"),
        ({"X-Forwarded-For": "1.2.3.4"}, "cannot be set"),
        ({"X-Klyntos-Run-Id": "x"}, "cannot be set"),
        ({"Bad Name": "x"}, "is not a header name"),
        ({"Content-Type": "text/html"}, "Content-Type 'text/html' is not allowed"),
        ({"Content-Type": "text/plain; charset=utf-7"}, "the body is sent as charset=utf-8"),
        ({"Content-Type": "text/csv; header=present"}, "parameter 'header=present'"),
    ],
)
def test_unsafe_headers_are_validation_errors_naming_the_header(
    headers: dict[str, str], fragment: str
) -> None:
    [(name, field, message)] = errors_of(responding(headers=headers))
    assert (name, field) == ("answer", f"headers.{next(iter(headers))}")
    assert fragment in message


def test_safe_headers_and_own_x_headers_pass() -> None:
    headers = {
        "Content-Type": 'text/plain; Charset="UTF-8"',
        "Cache-Control": "no-store",
        "X-Request-Source": "klyntos",
        "Retry-After": "5",
    }
    assert errors_of(responding(headers=headers)) == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"status": 99}, "status"),
        ({"status": 600}, "status"),
        ({"error_status": 302}, "error_status"),
    ],
)
def test_status_codes_are_bounded(config: dict[str, Any], field: str) -> None:
    assert [(n, f) for n, f, _ in errors_of(responding(**config))] == [("answer", field)]


async def test_a_rendered_header_with_a_line_break_or_markup_type_fails_the_step() -> None:
    outcome, _ = await run_graph(
        responding(headers={"X-Echo": "<shape.result.tags>"}),
        {"n": 1, "tags": "a\r\nSet-Cookie: x"},
    )
    assert outcome.status == "failed"
    assert "answer: header 'X-Echo' may only hold printable Latin-1 text" in str(outcome.error)
    outcome, _ = await run_graph(
        responding(headers={"Content-Type": "<shape.result.tags>"}), {"n": 1, "tags": "text/html"}
    )
    assert outcome.status == "failed"
    assert "Content-Type 'text/html' is not allowed" in str(outcome.error)


def test_at_most_one_response_and_never_inside_a_loop() -> None:
    two = graph(
        [
            block("webhook", "webhook"),
            block("first", "response"),
            block("second", "response"),
        ],
        [("webhook", "first"), ("webhook", "second")],
    )
    assert errors_of(two) == [("second", "type", "a workflow has at most one Response block")]
    looped = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.items>"),
            block("inner", "response", "loop", body="<item>"),
        ],
        [("webhook", "loop"), ("loop", "inner")],
    )
    assert errors_of(looped) == [
        ("inner", "parent", "a Response block cannot sit inside a loop (it answers once)")
    ]


def test_the_catalogue_lists_it_with_its_config_fields() -> None:
    entry = REGISTRY["response"].describe()
    assert entry["label"] == "Response"
    assert set(entry["config_schema"]["properties"]) >= {
        "status",
        "headers",
        "body",
        "error_status",
    }
