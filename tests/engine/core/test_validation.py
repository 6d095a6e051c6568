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


# --- hostile configs: reported, never a crash ----------------------------------------------

HOSTILE_VALUES: list[Any] = [
    True,
    5,
    "abc",
    ["a"],
    [1, {"a": 2}],
    None,
    {"a": {"b": 1}},
    {"$ref": "#/nope"},
    {"$ref": "#"},
    {"properties": [1]},
    {"type": 5},
    {"type": {}},
    {"type": ["string", 3]},
    {"type": "object", "properties": {"a": 5, "content": True}},
    {"type": "object", "properties": {"items": {"type": "array", "items": 5}}},
]


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_any_json_in_any_config_field_is_reported_not_raised(type_: str) -> None:
    fields = [*REGISTRY[type_].config_schema["properties"], "unknown_field"]
    for field_name in fields:
        for value in HOSTILE_VALUES:
            config = {"items": "<webhook.body.items>"} if type_ == "loop" else {}
            hostile = {**config, field_name: value}
            blocks = [
                block("webhook", "webhook", **(hostile if type_ == "webhook" else {})),
                block("t", "transform", input="<b.x.y>", expression="@"),
            ]
            edges = [("webhook", "t")]
            if type_ != "webhook":
                blocks.append(block("b", type_, **hostile))
                inner = block("c", "transform", "b", input="<item.a.b>", expression="@")
                blocks.extend([inner] if type_ == "loop" else [])
                edges = [("webhook", "b"), ("b", "t")]
            # Must not raise; what it reports is checked by the tests below.
            errors_of(graph(blocks, edges))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"user_prompt": "hi", "response_format": True}, "response_format"),
        ({"user_prompt": "hi", "response_format": ["a"]}, "response_format"),
    ],
)
def test_an_agent_config_failing_its_schema_reports_only_the_schema_error(
    config: dict[str, Any], field: str
) -> None:
    blocks = [block("webhook", "webhook"), block("ai", "agent", **config)]
    errors = errors_of(graph(blocks, [("webhook", "ai")]))
    assert [(name, f) for name, f, _ in errors] == [("ai", field)]
    assert "is not of type 'object'" in errors[0][2]


def test_one_save_lists_every_problem_a_config_with_a_bad_field_also_has() -> None:
    """A loop with max_concurrent 0 (a schema error) also had a broken aggregation and a
    reference to a field nothing outputs: those showed only once the first was fixed."""
    blocks = base()
    blocks[1]["config"].update(
        max_concurrent=0,
        aggregations={"top": "reverse(sort_by(results, &score))[:3"},
    )
    blocks[2]["config"]["url"] = "https://example.com/<row.id>?t=<fetch_0.body>"
    blocks.append(block("after", "transform", input="<loop.nonexistent>", expression="@"))
    errors = errors_of(graph(blocks, [("webhook", "loop"), ("loop", "after")]))
    assert sorted((name, field) for name, field, _ in errors) == [
        ("after", "input"),
        ("fetch", "url"),
        ("loop", "aggregations.top"),
        ("loop", "max_concurrent"),
    ]


@pytest.mark.parametrize("aggregations", [["a"], "abc", 5])
def test_loop_aggregations_that_are_not_an_object_are_a_schema_error(aggregations: Any) -> None:
    blocks = base()
    blocks[1]["config"]["aggregations"] = aggregations
    errors = errors_of(graph(blocks, [("webhook", "loop")]))
    assert [(name, f) for name, f, _ in errors] == [("loop", "aggregations")]


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": [1]},
        {"type": 5},
        {"type": "object", "properties": {"a": 5}},
    ],
)
def test_malformed_body_schemas_are_reported_and_their_fields_listed_as_unknown(
    schema: dict[str, Any],
) -> None:
    blocks = [
        block("webhook", "webhook", body_schema=schema),
        block("t", "transform", input="<webhook.body.a.b>", expression="@"),
    ]
    result = validate(parse_graph(graph(blocks, [("webhook", "t")])), REGISTRY, [])
    assert [(e.block_name, e.field) for e in result.errors] == [("webhook", "body_schema")]
    assert "not a valid JSON schema" in result.errors[0].message
    # The picker still lists the body; the malformed part is simply of unknown type.
    assert {"ref": "webhook", "type": "object"} in result.scopes["t"]
    assert "webhook.body" in {entry["ref"] for entry in result.scopes["t"]}


@pytest.mark.parametrize(
    ("type_", "field", "config"),
    [
        ("webhook", "body_schema", {}),
        ("agent", "response_format", {"user_prompt": "hi"}),
    ],
)
@pytest.mark.parametrize(
    "ref", ["#/nope", "#/$defs/missing", "other.json", "http://169.254.169.254/latest"]
)
def test_an_unresolvable_ref_is_a_validation_error_naming_block_and_field(
    type_: str, field: str, config: dict[str, Any], ref: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": ref}, "b": {"$ref": "#/$defs/ok"}},
        "$defs": {"ok": {"type": "string"}},
    }
    blocks = [block("webhook", "webhook"), block("b", type_, **config, **{field: schema})]
    if type_ == "webhook":
        blocks = [block("b", "webhook", body_schema=schema)]
    errors = errors_of(graph(blocks, [("webhook", "b")] if type_ != "webhook" else []))
    assert errors == [
        ("b", field, f"$ref '{ref}' cannot be resolved (only references inside this schema work)")
    ]


def test_body_errors_report_unusable_schemas_instead_of_raising() -> None:
    from engine.blocks.webhook import body_errors

    assert body_errors({"$ref": "#/nope"}, {}) == [
        "body_schema: $ref '#/nope' cannot be resolved (only references inside this schema work)"
    ]
    assert body_errors({"$ref": "#"}, {}) == [
        "body_schema: its $refs refer to each other without end"
    ]
    assert body_errors({"type": 5}, {})[0].startswith("body_schema: not a valid JSON schema")
    assert body_errors({"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}, "x") == [
        "body: 'x' is not of type 'integer'"
    ]


# --- nesting, sizes and names ---------------------------------------------------------------


def nested_loops(depth: int) -> dict[str, Any]:
    blocks = [block("webhook", "webhook")]
    parent, items = None, "<webhook.body.items>"
    for level in range(depth):
        blocks.append(block(f"l{level}", "loop", parent, items=items, variable=f"v{level}"))
        parent, items = f"l{level}", f"<v{level}.children>"
    blocks.append(block("t", "transform", parent, input=f"<v{depth - 1}>", expression="@"))
    return graph(blocks, [("webhook", "l0")])


def test_loops_nest_at_most_five_deep() -> None:
    assert errors_of(nested_loops(5)) == []
    assert errors_of(nested_loops(7)) == [
        ("l5", "parent", "loops nest at most 5 deep; this one is 6 deep"),
        ("l6", "parent", "loops nest at most 5 deep; this one is 7 deep"),
    ]


def test_validation_work_grows_linearly_with_loop_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from engine.core import validation

    calls = []
    real_schema_at = validation.schema_at

    def counting_schema_at(*args: Any) -> Any:
        calls.append(args)
        return real_schema_at(*args)

    monkeypatch.setattr(validation, "schema_at", counting_schema_at)
    started = time.perf_counter()
    errors = errors_of(nested_loops(20))
    assert time.perf_counter() - started < 2
    assert len(calls) == 20  # each loop's item schema is worked out once
    assert len(errors) == 15 and all(field == "parent" for _, field, _ in errors)


def test_block_ids_and_names_have_length_limits() -> None:
    long_id = {**block("t", "transform", input="1", expression="@"), "id": "x" * 101}
    long_name = {**block("u", "transform", input="1", expression="@"), "name": "n" * 65}
    fits = {**block("v", "transform", input="1", expression="@"), "id": "y" * 100}
    fits["name"] = "m" * 64
    errors = errors_of(graph([long_id, long_name, fits], []))
    assert errors == [
        ("t", "id", "a block id is at most 100 characters"),
        ("n" * 65, "name", "a name is at most 64 characters"),
    ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda b: b[2].update(name="fetch\n"), ("fetch\n", "name", "a name is letters")),
        (
            lambda b: b[1]["config"].update(variable="row\n"),
            ("loop", "variable", "a variable name is letters"),
        ),
        (
            lambda b: b[1]["config"].update(aggregations={"top\n": "count"}),
            ("loop", "aggregations.top\n", "a name is letters"),
        ),
    ],
)
def test_a_trailing_newline_does_not_make_a_valid_name(
    mutate: Any, expected: tuple[str, str, str]
) -> None:
    blocks = base()
    mutate(blocks)
    errors = errors_of(graph(blocks, [("webhook", "loop")]))
    name, field, fragment = expected
    assert any(e[0] == name and e[1] == field and fragment in e[2] for e in errors), errors


def test_an_agent_answer_checked_against_an_unresolvable_format_fails_the_step_cleanly() -> None:
    from engine.blocks.agent import _structured
    from engine.core.errors import BlockError

    with pytest.raises(BlockError, match="cannot be resolved"):
        _structured('{"a": 1}', {"properties": {"a": {"$ref": "#/nope"}}})
    with pytest.raises(BlockError, match="without end"):
        _structured('{"a": 1}', {"$ref": "#"})


# --- the stored form -----------------------------------------------------------------------


def test_the_stored_result_resolves_secret_references_when_read() -> None:
    from engine.core.validation import stored_errors

    graph_json = graph(
        [
            block("webhook", "webhook"),
            block("t", "transform", input="<env.TOKEN> <env.A.B>", expression="@"),
        ],
        [("webhook", "t")],
    )
    result = validate(parse_graph(graph_json), REGISTRY, [])
    assert [(e.field, e.secret) for e in result.errors] == [("input", "TOKEN"), ("input", None)]
    stored = result.stored()
    assert [e.message for e in stored_errors(stored, [])] == [e.message for e in result.errors]
    with_secret = stored_errors(stored, ["TOKEN"])
    assert [e.message for e in with_secret] == ["<env.A.B>: write <env.NAME>"]
    assert stored_errors({"format": 0, "issues": []}, []) is None
    assert stored_errors(None, []) is None


def test_a_graph_past_the_limits_is_one_error_and_no_other_work() -> None:
    from engine.core.limits import GraphLimits

    blocks = [block(f"t{i}", "transform", input="1", expression="@") for i in range(4)]
    result = validate(parse_graph(graph(blocks, [])), REGISTRY, [], GraphLimits(max_blocks=3))
    assert [(e.field, e.message) for e in result.errors] == [
        ("graph", "the workflow has 4 blocks; the limit is 3 (KLYNTOS_MAX_BLOCKS)")
    ]
    assert len(result.scopes) == 0


def test_loop_depth_follows_the_limit_and_circles_of_parents_are_errors() -> None:
    from engine.core.limits import GraphLimits

    result = validate(parse_graph(nested_loops(3)), REGISTRY, [], GraphLimits(max_loop_depth=2))
    assert [(e.block_name, e.message) for e in result.errors] == [
        ("l2", "loops nest at most 2 deep; this one is 3 deep")
    ]
    circle = graph(
        [
            block("a", "loop", "b", items="<x>"),
            block("b", "loop", "a", items="<x>"),
            block("c", "transform", "a", input="1", expression="@"),
        ],
        [],
    )
    names = {(e.block_name, e.message) for e in validate(parse_graph(circle), REGISTRY).errors}
    assert names == {
        ("a", "loops contain each other in a circle"),
        ("b", "loops contain each other in a circle"),
        ("c", "loops contain each other in a circle"),
    }


def test_a_second_webhook_is_named_as_one_trigger_too_many() -> None:
    """The second webhook's problem is on the block itself (field "trigger", the editor's
    general line of its panel), never on a `type` field the user cannot see."""
    blocks = [
        block("webhook", "webhook"),
        block("webhook_2", "webhook"),
        block("t", "transform", input="<webhook.body>", expression="@"),
    ]
    assert errors_of(graph(blocks, [("webhook", "t")])) == [
        (
            "webhook_2",
            "trigger",
            "a workflow has one trigger; 'webhook' is its webhook already: remove 'webhook_2'",
        )
    ]


@pytest.mark.parametrize("where", ["inside", "upstream", "the loop"])
def test_a_block_named_like_a_loops_variable_is_an_error_naming_the_loop(where: str) -> None:
    blocks = [
        block("webhook", "webhook"),
        block("l", "loop", items="<webhook.body.leads>", variable="lead"),
        block("t", "transform", "l", input="<lead.name>", expression="@"),
    ]
    edges = [("webhook", "l")]
    if where == "inside":
        blocks.append(block("lead", "transform", "l", input="<lead.name>", expression="@"))
    elif where == "upstream":
        blocks.append(block("lead", "transform", input="<webhook.body>", expression="@"))
        edges = [("webhook", "lead"), ("lead", "l")]
    else:
        blocks[1] = block("lead", "loop", items="<webhook.body.leads>", variable="lead")
        blocks[2] = block("t", "transform", "lead", input="<lead.name>", expression="@")
        edges = [("webhook", "lead")]
    result = validate(parse_graph(graph(blocks, edges)), REGISTRY, [])
    loop_name = "lead" if where == "the loop" else "l"
    clash = [(e.block_name, e.field, e.message) for e in result.errors if e.field == "name"]
    assert clash == [
        (
            "lead",
            "name",
            f"'lead' is the variable of loop '{loop_name}' (its current item): name this block "
            "otherwise, or <lead.…> in the loop reads the block instead of the item",
        )
    ]


def test_a_block_named_like_a_loops_variable_downstream_of_it_is_fine() -> None:
    g = graph(
        [
            block("webhook", "webhook"),
            block("l", "loop", items="<webhook.body.leads>", variable="lead"),
            block("t", "transform", "l", input="<lead.name>", expression="@"),
            block("lead", "transform", input="<l.count>", expression="@"),
        ],
        [("webhook", "l"), ("l", "lead")],
    )
    assert validate(parse_graph(g), REGISTRY, []).errors == []
