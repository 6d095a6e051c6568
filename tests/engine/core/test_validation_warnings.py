"""Validation warns (never errs) when a whole list that grows with the batch — a loop's
results, the list a loop runs over — is placed in an Agent prompt or a Slack text."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import (
    STORED_FORMAT,
    ValidationResult,
    stored_errors,
    stored_warnings,
    validate,
)
from tests.engine.core.graphkit import block, graph

TEMPLATE = json.loads(Path("builder/gallery/parallel-lead-enrichment.json").read_text())["graph"]
TEMPLATE_ENV = ["CLEARBIT_API_KEY", "LINKEDIN_API_KEY"]


def validated(graph_json: dict[str, Any]) -> ValidationResult:
    return validate(parse_graph(graph_json), REGISTRY, TEMPLATE_ENV)


def template_with(**configs: dict[str, Any]) -> dict[str, Any]:
    """The shipped template with some blocks' config fields replaced."""
    changed = copy.deepcopy(TEMPLATE)
    for b in changed["blocks"]:
        b["config"].update(configs.get(b["id"], {}))
    return changed


def warned(result: ValidationResult) -> list[tuple[str | None, str]]:
    return [(w.block_name, w.field) for w in result.warnings]


def test_the_shipped_template_has_no_warnings() -> None:
    result = validated(TEMPLATE)
    assert result.errors == [] and result.warnings == []


def test_loop_results_in_a_prompt_warn_and_name_the_aggregations_to_use() -> None:
    result = validated(
        template_with(
            agent_summary={"user_prompt": "Processed <loop.count> leads\nResults: <loop.results>"}
        )
    )
    assert result.ok and result.errors == []  # still saves and runs
    [warning] = result.warnings
    assert (warning.block_id, warning.block_name, warning.field) == (
        "agent_summary",
        "agent_summary",
        "user_prompt",
    )
    assert warning.message.startswith(
        "<loop.results> holds a list with every item of loop 'loop', which grows with the batch"
    )
    assert "Use the loop's aggregations after it instead: <loop.top_leads>" in warning.message
    assert "<loop.count>" in warning.message


def test_an_aggregation_with_an_entry_per_item_in_a_prompt_warns_and_a_bounded_one_does_not() -> (
    None
):
    """The contract report's table was every contract's row: at 5,000 contracts the report's
    prompt was refused after every extraction had been paid for."""
    changed = copy.deepcopy(TEMPLATE)
    [loop] = [b for b in changed["blocks"] if b["id"] == "loop"]
    loop["config"]["aggregations"]["every_lead"] = "results[*].{id: item.id, name: item.name}"
    loop["config"]["aggregations"]["ten_leads"] = "results[:10].{id: item.id, name: item.name}"
    for b in changed["blocks"]:
        if b["id"] == "agent_summary":
            b["config"]["user_prompt"] += "\nAll: <loop.every_lead>\nSome: <loop.ten_leads>"
    result = validated(changed)
    assert result.ok and result.errors == []
    [warning] = result.warnings
    assert (warning.block_name, warning.field) == ("agent_summary", "user_prompt")
    assert warning.message.startswith(
        "<loop.every_lead>: aggregation 'every_lead' of loop 'loop' has an entry for every "
        "item, so it grows with the batch"
    )


def test_the_webhooks_leads_list_in_slack_text_warns() -> None:
    result = validated(template_with(slack={"text": "New batch: <webhook.body.leads>"}))
    assert result.errors == []
    [warning] = result.warnings
    assert (warning.block_name, warning.field) == ("slack", "text")
    assert warning.message.startswith(
        "<webhook.body.leads> holds the whole list loop 'loop' runs over, which grows with "
        "the batch"
    )
    assert "<loop.top_leads>" in warning.message


def test_what_holds_a_growing_list_warns_and_parts_of_it_do_not() -> None:
    growing = ["<webhook.body>", "<webhook>", "<loop>", "<loop.failed>", "<loop.results>"]
    bounded = [
        "<webhook.body.leads.0.name>",
        "<loop.results.0>",
        "<loop.count>",
        "<loop.succeeded>",
        "<loop.top_leads>",
        "<loop.failures.count>",
    ]
    for ref in growing:
        result = validated(template_with(agent_summary={"system_prompt": f"See {ref}"}))
        assert warned(result) == [("agent_summary", "system_prompt")], ref
    for ref in bounded:
        result = validated(template_with(agent_summary={"system_prompt": f"See {ref}"}))
        assert result.warnings == [], ref


def test_inside_the_loop_the_item_is_bounded_and_the_whole_list_is_not() -> None:
    result = validated(
        template_with(
            agent_analysis={"user_prompt": "<lead.name> <loop.item> <loop.index> <lead>"},
            agent_merge={"user_prompt": "Compare with all of <webhook.body.leads>"},
        )
    )
    assert result.errors == []
    assert warned(result) == [("agent_merge", "user_prompt")]


def test_only_prompts_and_slack_text_are_checked_and_a_repeat_warns_once() -> None:
    result = validated(
        template_with(
            agent_summary={
                "user_prompt": "<loop.results> and again <loop.results>",
                "model": "gpt-4o-mini",
            },
            slack={"channel": "#sales-leads"},
        )
    )
    assert warned(result) == [("agent_summary", "user_prompt")]
    as_url = graph(
        [
            block("webhook", "webhook"),
            block("loop", "loop", items="<webhook.body.rows>"),
            block("post", "http", url="https://example.com/", body="<loop.results>"),
        ],
        [("webhook", "loop"), ("loop", "post")],
    )
    assert validated(as_url).warnings == []


def test_a_loop_without_aggregations_is_told_to_add_some() -> None:
    result = validated(
        graph(
            [
                block("webhook", "webhook"),
                block("rows", "loop", items="<webhook.body.rows>", variable="row"),
                block("say", "slack", channel="#c", text="Done: <rows.results>"),
            ],
            [("webhook", "rows"), ("rows", "say")],
        )
    )
    [warning] = result.warnings
    assert "Add aggregations to loop 'rows'" in warning.message
    assert "<rows.count>" in warning.message


def test_a_nested_loops_items_warn_where_they_are_the_whole_list() -> None:
    result = validated(
        graph(
            [
                block("webhook", "webhook"),
                block("companies", "loop", items="<webhook.body.companies>", variable="company"),
                block(
                    "people", "loop", "companies", items="<company.employees>", variable="person"
                ),
                block("hello", "agent", "people", user_prompt="Hi <person.name>"),
                block("recap", "agent", "companies", user_prompt="Staff: <company.employees>"),
            ],
            [("webhook", "companies"), ("companies", "people"), ("people", "recap")],
        )
    )
    assert result.errors == []
    assert warned(result) == [("recap", "user_prompt")]


def test_warnings_are_stored_with_the_version_and_read_back() -> None:
    result = validated(template_with(slack={"text": "<loop.results>"}))
    stored = result.stored()
    assert stored["format"] == STORED_FORMAT
    assert stored_warnings(stored) == result.warnings
    assert stored_errors(stored, TEMPLATE_ENV) == []
    older = {**stored, "format": STORED_FORMAT - 1}
    assert stored_errors(older, TEMPLATE_ENV) is None  # worked out again, warnings included
    assert stored_warnings(older) == []


def test_aggregations_reading_a_block_the_loop_does_not_hold_are_warned_naming_it() -> None:
    """A rename that left the aggregations behind: `outputs.agent_analysis` reads null for
    every item and `block=='agent_analysis'` never matches; validation says so before the
    batch runs (the shipped template itself has no such warning)."""
    assert [w for w in validated(TEMPLATE).warnings if "has no block" in w.message] == []
    text = json.dumps(TEMPLATE)
    renamed = json.loads(
        text.replace('"name": "agent_analysis"', '"name": "analysis"').replace(
            "<agent_analysis.", "<analysis."
        )
    )
    result = validated(renamed)
    assert result.errors == []
    stale = [(w.block_name, w.field) for w in result.warnings if "has no block" in w.message]
    assert stale == [
        ("loop", "aggregations.top_leads"),
        ("loop", "aggregations.urgency_counts"),
        ("loop", "aggregations.average_score"),
        ("loop", "aggregations.failures"),
    ]
    [first] = [w for w in result.warnings if w.field == "aggregations.top_leads"]
    assert first.message.startswith(
        "reads outputs.agent_analysis, but loop 'loop' has no block 'agent_analysis' (its "
        "blocks: agent_merge, analysis, http_clearbit, http_linkedin, store_lead); renamed"
    )
    [failures] = [w for w in result.warnings if w.field == "aggregations.failures"]
    assert "reads block == 'agent_analysis', but loop 'loop' has no block" in failures.message
