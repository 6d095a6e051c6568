"""engine/core/expression_names.py: the block names an aggregation reads."""

from __future__ import annotations

from engine.core.expression_names import block_names_read


def test_outputs_fields_and_block_comparisons_are_read_in_order() -> None:
    expression = (
        "{top: reverse(sort_by(results[*].{s: outputs.agent_analysis.score}, &s))[:5], "
        "merged: results[0].outputs.agent_merge, "
        "bad: length(failed[?block=='store_lead']), other: failed[?`\"x\"` != block], "
        "again: results[*].outputs.agent_analysis}"
    )
    assert block_names_read(expression) == [
        ("outputs.agent_analysis", "agent_analysis"),
        ("outputs.agent_merge", "agent_merge"),
        ("block == 'store_lead'", "store_lead"),
        ("block == 'x'", "x"),
    ]


def test_other_fields_numbers_and_bad_expressions_read_no_block() -> None:
    assert block_names_read("results[*].item.outputs_count") == []
    assert block_names_read("failed[?index == `3`].block") == []
    assert block_names_read("failed[?kind == 'store_lead']") == []
    assert block_names_read("outputs") == []
    assert block_names_read("results[*.") == []
