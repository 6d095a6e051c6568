"""The webhook trigger step: it checks a body nobody checked, and trusts a run's input that
was checked when the run was created."""

from __future__ import annotations

from typing import Any

from engine.core.executor import RunOptions
from engine.core.graph import parse_graph
from engine.runner import RunSpec, run_options
from tests.engine.core.graphkit import block, graph, run_graph

SCHEMA = {"type": "object", "required": ["leads"], "properties": {"leads": {"type": "array"}}}


def hook_graph() -> dict[str, Any]:
    return graph([block("hook", "webhook", body_schema=SCHEMA)], [])


async def test_a_body_nobody_checked_is_checked_and_fails_naming_the_field() -> None:
    outcome, recorder = await run_graph(hook_graph(), {"leads": "not a list"})
    assert outcome.status == "failed"
    (failed,) = recorder.of("step.failed", block="hook")
    assert "body does not match the schema" in failed.data["error"]
    assert "leads" in failed.data["error"]


async def test_a_checked_input_is_not_checked_again() -> None:
    # This body would fail the check: passing shows the step took the flag's word (the
    # check happened when the run was created, tests/builder/test_webhook.py).
    body = {"leads": "not a list"}
    outcome, recorder = await run_graph(hook_graph(), body, options=RunOptions(input_checked=True))
    assert outcome.status == "succeeded"
    (finished,) = recorder.of("step.finished", block="hook")
    assert finished.data["output"] == {"body": body}


def test_a_stored_runs_input_counts_as_checked() -> None:
    """Run rows are created by builder.services.run_create, which refuses (422) a body the
    trigger's schema refuses; the runner says so to the engine."""
    spec = RunSpec(graph=parse_graph(hook_graph()), input={}, env={}, options={}, data=None)  # type: ignore[arg-type]
    assert run_options(spec).input_checked is True
    assert RunOptions().input_checked is False


async def test_the_schemas_defaults_fill_what_a_body_left_out() -> None:
    schema = {
        "type": "object",
        "properties": {
            "leads": {
                "type": "array",
                "items": {"properties": {"title": {"type": "string", "default": ""}}},
            }
        },
    }
    g = graph(
        [
            block("hook", "webhook", body_schema=schema),
            block("loop", "loop", items="<hook.body.leads>", variable="lead"),
            block("t", "transform", "loop", input="<lead.title>", expression="@"),
        ],
        [("hook", "loop")],
    )
    for checked in (False, True):
        body = {"leads": [{"title": "CTO"}, {}]}
        outcome, _ = await run_graph(g, body, options=RunOptions(input_checked=checked))
        assert outcome.status == "succeeded", outcome.error
        assert outcome.outputs["loop"]["succeeded"] == 2
        assert body == {"leads": [{"title": "CTO"}, {}]}  # the run's input stays as posted


async def test_copies_of_a_list_default_stop_at_the_output_limit_before_memory_holds_them() -> None:
    # 10 kB of default per lead: 1,000 leads would copy 10 MB; the limit is 100 kB.
    tags = ["x" * 100] * 100
    schema = {
        "type": "object",
        "properties": {
            "leads": {"type": "array", "items": {"properties": {"tags": {"default": tags}}}}
        },
    }
    g = graph([block("hook", "webhook", body_schema=schema)], [])
    body = {"leads": [{"id": i} for i in range(1_000)]}
    outcome, recorder = await run_graph(g, body, options=RunOptions(max_output_bytes=100_000))
    assert outcome.status == "failed"
    (failed,) = recorder.of("step.failed", block="hook")
    assert failed.data["error"] == (
        "the body with its schema's defaults filled in is larger than 100000 bytes"
        " (KLYNTOS_MAX_OUTPUT_BYTES)"
    )
    # Under the limit the same default is filled, a copy per lead.
    small = {"leads": [{"id": 1}, {"id": 2}]}
    outcome, _ = await run_graph(g, small, options=RunOptions(max_output_bytes=100_000))
    assert outcome.status == "succeeded", outcome.error
    leads = outcome.outputs["hook"]["body"]["leads"]
    assert leads[0]["tags"] == tags and leads[0]["tags"] is not leads[1]["tags"]
