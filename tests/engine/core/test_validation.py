import json
from pathlib import Path
from typing import Any

import pytest

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from tests.engine.core.graphkit import block, graph

TEMPLATE = json.loads(Path("builder/gallery/parallel-lead-enrichment.json").read_text())["graph"]
TEMPLATE_ENV = ["CLEARBIT_API_KEY", "LINKEDIN_API_KEY"]


def errors_of(
    graph_json: dict[str, Any], env: list[str] | None = None
) -> list[tuple[str | None, str, str]]:
    result = validate(parse_graph(graph_json), REGISTRY, env or [])
    return [(e.block_name, e.field, e.message) for e in result.errors]


def base() -> list[dict[str, Any]]:
    return [
        block("webhook", "webhook"),
        block("loop", "loop", items="<webhook.body.items>", variable="row"),
        block("fetch", "http", "loop", url="https://example.com/<row.id>"),
    ]


def test_template_is_valid_and_scope_lists_what_agent_merge_can_see() -> None:
    result = validate(parse_graph(TEMPLATE), REGISTRY, TEMPLATE_ENV)
    assert result.errors == []
    refs = {entry["ref"] for entry in result.scopes["agent_merge"]}
    assert {"lead", "lead.email", "loop.index", "loop.item", "webhook.body"} <= refs
    assert {
        "agent_analysis.content",
        "agent_analysis.qualification_score",
        "http_clearbit.body",
        "http_linkedin.body",
    } <= refs
    assert {"env.CLEARBIT_API_KEY", "env.LINKEDIN_API_KEY"} <= refs
    assert not any(
        r.startswith(("store_lead", "agent_summary", "slack", "agent_merge")) for r in refs
    )
    summary = {entry["ref"] for entry in result.scopes["agent_summary"]}
    assert {"loop.results", "loop.count", "loop.top_leads", "loop.failed"} <= summary
    assert "lead" not in summary and "agent_analysis.content" not in summary


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda b, e: b.append(block("x", "teleport")),
            ("x", "type", "unknown block type 'teleport'"),
        ),
        (
            lambda b, e: b.append(
                {**block("y", "transform", input="<webhook.body>", expression="@"), "name": "fetch"}
            ),
            ("fetch", "name", "duplicate name 'fetch'"),
        ),
        (
            lambda b, e: b.append(block("env", "transform", input="1", expression="@")),
            ("env", "name", "'env' is reserved"),
        ),
        (
            lambda b, e: e.append(("webhook", "fetch")),
            ("fetch", "edges", "crosses a loop boundary"),
        ),
        (
            lambda b, e: b[2]["config"].update(url="https://example.com/<row.id>/<later.result>"),
            ("fetch", "url", "no block or variable named 'later'"),
        ),
        (lambda b, e: b[2]["config"].update(method="FETCH"), ("fetch", "method", "is not one of")),
        (lambda b, e: b[2]["config"].pop("url"), ("fetch", "url", "'url' is a required property")),
        (
            lambda b, e: b[1]["config"].update(max_concurrent=0),
            ("loop", "max_concurrent", "less than the minimum"),
        ),
        (
            lambda b, e: b[1]["config"].update(aggregations={"top": "sort_by(("}),
            ("loop", "aggregations.top", "invalid JMESPath"),
        ),
        (
            lambda b, e: b[2]["config"].update(headers={"A": "<env.NOPE>"}),
            ("fetch", "headers.A", "'NOPE' is not one of your secrets"),
        ),
        (
            lambda b, e: b[2]["config"].update(url="https://e.com/<row.id>?x=<loop.results>"),
            ("fetch", "url", "'loop' has no field 'results'"),
        ),
        (
            lambda b, e: b.append(block("db", "database", sql="DELETE FROM t; DROP TABLE t")),
            ("db", "sql", "one statement per block"),
        ),
    ],
)
def test_each_rejection_names_block_and_field(mutate: Any, expected: tuple[str, str, str]) -> None:
    blocks, edges = base(), [("webhook", "loop")]
    mutate(blocks, edges)
    errors = errors_of(graph(blocks, edges))
    name, field, fragment = expected
    assert any(e[0] == name and e[1] == field and fragment in e[2] for e in errors), errors


def test_cycles_are_rejected_naming_a_block() -> None:
    blocks = [
        block("a", "transform", input="1", expression="@"),
        block("b", "transform", input="1", expression="@"),
    ]
    errors = errors_of(graph(blocks, [("a", "b"), ("b", "a")]))
    assert any(field == "edges" and "cycle" in message for _, field, message in errors)


def test_reference_to_a_block_that_is_not_upstream() -> None:
    blocks = [
        block("a", "transform", input="<b.result>", expression="@"),
        block("b", "transform", input="1", expression="@"),
    ]
    errors = errors_of(graph(blocks, []))
    assert (
        "a",
        "input",
        "<b.result>: 'b' is not upstream of this block (connect it, or move it out of its loop)",
    ) in errors


def test_reference_into_a_loop_body_from_outside_is_out_of_scope() -> None:
    blocks = [*base(), block("after", "transform", input="<fetch.status>", expression="@")]
    errors = errors_of(graph(blocks, [("webhook", "loop"), ("loop", "after")]))
    assert any(e[0] == "after" and "'fetch' is not upstream" in e[2] for e in errors)


def test_fields_a_block_does_not_output() -> None:
    blocks = [*base(), block("after", "transform", input="<loop.resultz>", expression="@")]
    errors = errors_of(graph(blocks, [("webhook", "loop"), ("loop", "after")]))
    assert any(e[0] == "after" and "'loop' has no field 'resultz'" in e[2] for e in errors)
    agent = [
        block("webhook", "webhook"),
        block("ai", "agent", user_prompt="hi"),
        block("t", "transform", input="<ai.budget>", expression="@"),
    ]
    errors = errors_of(graph(agent, [("webhook", "ai"), ("ai", "t")]))
    assert any(e[0] == "t" and "'ai' has no field 'budget'" in e[2] for e in errors)


def test_nested_loops_reach_outer_loop_by_name() -> None:
    blocks = [
        block("webhook", "webhook"),
        block("companies", "loop", items="<webhook.body.companies>", variable="company"),
        block("people", "loop", "companies", items="<company.people>", variable="person"),
        block(
            "t",
            "transform",
            "people",
            input={
                "c": "<companies.index>",
                "p": "<loop.index>",
                "n": "<person.name>",
                "co": "<company>",
            },
            expression="@",
        ),
    ]
    assert errors_of(graph(blocks, [("webhook", "companies"), ("companies", "people")])) == []


def test_bad_parent_and_trigger_inside_loop() -> None:
    blocks = [block("webhook", "webhook", "t"), block("t", "transform", input="1", expression="@")]
    errors = errors_of(graph(blocks, []))
    assert any(e[0] == "webhook" and e[1] == "parent" and "not a loop" in e[2] for e in errors)
