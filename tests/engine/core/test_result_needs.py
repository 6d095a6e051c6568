"""What a loop's `results` keep: only what a reader can reach, and readers see the same."""

import jmespath
import pytest

from engine.core.graph import parse_graph
from engine.core.result_needs import Need, prune, results_need
from tests.engine.core.graphkit import block, graph

URGENCY = ["low", "medium", "high", None]


def loop_output(n: int = 12) -> dict:
    """A loop's output with the shapes items produce: nested objects, lists, nulls, text."""
    results = []
    for i in range(n):
        outputs = {
            "agent_analysis": {
                "qualification_score": (i * 7) % 11,
                "urgency_level": URGENCY[i % 4],
                "notes": "x" * (i % 3),
            },
            "http": {"status": 200, "body": {"tags": [f"t{i}", f"u{i % 2}"], "size": i or None}},
            "empty": [] if i % 2 else {},
        }
        if i % 5 == 0:
            del outputs["http"]
        results.append({"index": i, "item": {"id": i, "name": f"lead {i}"}, "outputs": outputs})
    failed = [{"index": 99, "item": {"id": 99}, "block": "http", "error": "404"}]
    return {"results": results, "count": n + 1, "succeeded": n, "failed": failed}


def loop_graph(aggregations: dict | None = None, downstream: str | None = None) -> dict:
    blocks = [
        block("webhook", "webhook"),
        block("loop", "loop", items="<webhook.body.items>", aggregations=aggregations or {}),
        block("fetch", "http", "loop", url="https://a.example/<loop.index>"),
    ]
    if downstream is not None:
        blocks.append(block("after", "transform", input=downstream, expression="@"))
    return graph(blocks, [("webhook", "loop"), ("loop", "after")] if downstream else [])


def need_for(aggregations: dict | None = None, downstream: str | None = None) -> Need | None:
    g = parse_graph(loop_graph(aggregations, downstream))
    parsed = {k: jmespath.compile(v) for k, v in (aggregations or {}).items()}
    return results_need(g, g.block("loop"), parsed)


def pruned_output(output: dict, need: Need | None) -> dict:
    return {**output, "results": [prune(entry, need) for entry in output["results"]]}


EXPRESSIONS = [
    "reverse(sort_by(results, &outputs.agent_analysis.qualification_score))[:5]"
    ".{lead_id: item.id, name: item.name, score: outputs.agent_analysis.qualification_score}",
    "length(results[?outputs.agent_analysis.urgency_level=='high'])",
    "{high: length(results[?outputs.agent_analysis.urgency_level=='high']),"
    " none: length(results[?!outputs.agent_analysis.urgency_level])}",
    "avg(results[].outputs.agent_analysis.qualification_score)",
    "length(results[*].outputs.http)",
    "length(results[*].outputs.http.body.size)",
    "results[*].outputs.http.body.tags[]",
    "results[*].outputs.http.body.tags[0]",
    "results[].outputs.http.body | [*].size",
    "max_by(results, &outputs.agent_analysis.qualification_score).item.name",
    "min_by(results, &outputs.agent_analysis.qualification_score).outputs.agent_analysis",
    "map(&outputs.agent_analysis.notes, results)",
    "results[0].outputs",
    "results[-1].outputs.http.body.tags",
    "results[?outputs.http].index",
    "results[?outputs.empty].index",
    "length(results)",
    "length(results[0].outputs)",
    "keys(results[1].outputs)",
    "results[*].outputs.* | length(@)",
    "results[*].outputs.agent_analysis.[qualification_score, urgency_level]",
    "results[*].[outputs.http.status || `0`, item.id]",
    "not_null(results[0].outputs.http, results[1].outputs.http).body",
    "to_string(results[2].outputs.agent_analysis)",
    "results[*].outputs.http.body.tags | [][?@ == 'u1'] | length(@)",
    "results[:3]",
    "results | [?outputs.agent_analysis.qualification_score > `5`] | [*].item.id",
    "sum(results[*].outputs.agent_analysis.qualification_score) > `10` && count",
    "count",
    "failed[*].error",
    "@",
    "results[].outputs.empty",
    "sort(results[*].outputs.agent_analysis.urgency_level | [?@])",
    "results[0] | outputs.agent_analysis | keys(@)",
    "results[*].outputs.http.body.tags | [] | reverse(@)",
    # The shipped template's aggregations.
    "reverse(sort_by(results[*].{lead_id: item.id, name: item.name,"
    " score: outputs.agent_analysis.qualification_score}, &score))[:5]",
    "{high: length(results[?outputs.agent_analysis.urgency_level=='high'].index),"
    " low: length(results[?outputs.agent_analysis.urgency_level=='low'].index)}",
    "avg(results[*].outputs.agent_analysis.qualification_score)",
    "{count: length(failed), examples: failed[:3].{lead_id: item.id, step: block}}",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_an_aggregation_reads_the_same_from_what_is_kept(expression: str) -> None:
    output = loop_output()
    need = need_for({"agg": expression})
    assert jmespath.search(expression, pruned_output(output, need)) == jmespath.search(
        expression, output
    )


def test_the_template_summary_keeps_the_item_and_one_score_per_result() -> None:
    need = need_for({"top": EXPRESSIONS[0]})
    entry = loop_output()["results"][3]
    kept = prune(entry, need)
    assert kept == {
        "item": entry["item"],
        "outputs": {"agent_analysis": {"qualification_score": 10}},
    }
    assert kept["item"] is entry["item"]  # the input's own element, not a copy


def test_nothing_is_kept_when_no_reader_reads_results() -> None:
    assert need_for() is None
    assert need_for({"n": "count"}, "<loop.succeeded>") is None
    assert need_for({"n": "length(results)"}) is None  # the list stays, its entries None


@pytest.mark.parametrize("reference", ["<loop.results>", "<loop>", "Results: <loop.results>"])
def test_a_reference_to_results_whole_keeps_every_entry_whole(reference: str) -> None:
    need = need_for(downstream=reference)
    assert need is not None and need.whole


def test_a_reference_into_results_keeps_that_path() -> None:
    need = need_for(downstream="<loop.results.0.outputs.http.status>")
    entry = loop_output()["results"][1]
    assert prune(entry, need) == {"outputs": {"http": {"status": 200}}}


def test_an_unknown_expression_node_keeps_everything() -> None:
    g = parse_graph(loop_graph())
    odd = jmespath.compile("results")
    odd.parsed = {"type": "something_new", "children": []}
    need = results_need(g, g.block("loop"), {"odd": odd})
    assert need is not None and need.whole


def test_an_inner_loop_keeps_what_the_outer_loops_readers_reach() -> None:
    g = parse_graph(
        graph(
            [
                block("webhook", "webhook"),
                block("outer", "loop", items="<webhook.body.items>"),
                block("inner", "loop", "outer", items="<outer.item.people>"),
                block("fetch", "http", "inner", url="https://a.example/<inner.index>"),
            ],
            [("webhook", "outer"), ("outer", "inner")],
        )
    )
    outer = results_need(
        g, g.block("outer"), {"x": jmespath.compile("results[*].outputs.inner.results[0].item")}
    )
    inner = results_need(g, g.block("inner"), {}, outer)
    assert inner is not None and inner.fields == {"item": Need(whole=True)}
    assert results_need(g, g.block("inner"), {}, None) is None
    whole = results_need(g, g.block("inner"), {}, Need(whole=True))
    assert whole is not None and whole.whole


def test_the_shipped_template_keeps_per_lead_its_item_score_and_urgency_only() -> None:
    import json
    from pathlib import Path

    from engine.core.expressions import compile_expression

    template = Path(__file__).parents[3] / "builder/gallery/parallel-lead-enrichment.json"
    g = parse_graph(json.loads(template.read_text())["graph"])
    loop = next(b for b in g.blocks if b.is_loop)
    aggregations = {k: compile_expression(v) for k, v in loop.config["aggregations"].items()}
    need = results_need(g, loop, aggregations)
    entry = {
        "index": 4,
        "item": {"id": "l4", "name": "Ada"},
        "outputs": {
            "agent_analysis": {"qualification_score": 8, "urgency_level": "high", "x": "y" * 99},
            "http_clearbit": {"status": 200, "body": {"metrics": {"employees": 40}}},
            "agent_merge": {"content": "z" * 2000},
        },
    }
    assert prune(entry, need) == {
        "index": 4,
        "item": entry["item"],
        "outputs": {"agent_analysis": {"qualification_score": 8, "urgency_level": "high"}},
    }
