"""Issue 7, finding 4: a 172-character JMESPath expression built 5.2 million values.

`@ | [@, @]` doubles its input at each repetition; the doubled lists share their parts, so
the blow-up used to land on whoever walked the result (redaction, JSON, the rows): ~900 MB
and a stalled event loop at 19 repetitions. Every value an expression makes is now measured
while it runs against KLYNTOS_MAX_OUTPUT_BYTES, and every block output when it is recorded.
Timings are in `bench/limits.py` (key "d").
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connections
from django.test import override_settings

from builder.services import run_create, workflow_create
from engine.core.executor import RunOptions
from engine.models import Run, StepRun
from engine.runner import execute_run
from tests.engine.core.graphkit import Recorder, block, graph, run_graph

DOUBLING = "@" + " | [@, @]" * 25
SIZE_ERROR = "larger than 16777216 bytes (KLYNTOS_MAX_OUTPUT_BYTES)"


def transform_graph(expression: str, input_: str = "<webhook.body>") -> dict[str, Any]:
    return graph(
        [block("webhook", "webhook"), block("t", "transform", input=input_, expression=expression)],
        [("webhook", "t")],
    )


async def test_doubling_25_times_fails_the_step_with_a_size_error() -> None:
    outcome, events = await run_graph(transform_graph(DOUBLING), {"lead": "x" * 100})
    assert outcome.status == "failed"
    (failed,) = events.of("step.failed", block="t")
    assert failed.data["error"] == f"the expression's result is {SIZE_ERROR}"
    assert failed.data["attempts"] == 1  # a size error is never retried
    assert events.of("step.finished", block="t") == []


async def test_a_join_that_would_outgrow_the_limit_is_stopped_before_it_builds() -> None:
    # 2^20 one-character strings joined by a 64-character separator: 64 MiB of text from
    # a list the meter sizes at ~4 MiB.
    separator = "join('', " + "[" + ", ".join(["'xxxxxxxx'"] * 8) + "])"
    expression = "[@]" + " | [@, @] | []" * 20 + f" | join({separator}, @)"
    outcome, events = await run_graph(transform_graph(expression, "a"), {})
    (failed,) = events.of("step.failed", block="t")
    assert failed.data["error"] == f"the expression's result is {SIZE_ERROR}"


async def test_a_loop_aggregation_is_bounded_too() -> None:
    loop_graph = graph(
        [
            block("webhook", "webhook"),
            block(
                "loop",
                "loop",
                items="<webhook.body.items>",
                aggregations={"boom": "results" + " | [@, @]" * 25},
            ),
            block("t", "transform", "loop", input="<item>", expression="@"),
        ],
        [("webhook", "loop")],
    )
    outcome, events = await run_graph(loop_graph, {"items": [1, 2, 3]})
    (failed,) = events.of("step.failed", block="loop")
    assert failed.data["error"] == f"aggregation 'boom' failed: its result is {SIZE_ERROR}"
    assert outcome.status == "failed"


async def test_every_block_output_is_measured_when_recorded() -> None:
    recorder = Recorder()
    outcome, events = await run_graph(
        transform_graph("@"),
        {"text": "y" * 5000},
        options=RunOptions(max_output_bytes=4096),
        recorder=recorder,
    )
    (failed,) = events.of("step.failed", block="webhook")
    assert failed.data["error"] == (
        "the block's output is larger than 4096 bytes (KLYNTOS_MAX_OUTPUT_BYTES)"
    )
    assert events.of("step.started", block="t") == []
    small, _ = await run_graph(
        transform_graph("@"), {"text": "y" * 100}, options=RunOptions(max_output_bytes=4096)
    )
    assert small.status == "succeeded"


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
async def test_the_setting_bounds_a_run_and_the_run_ends_failed(django_user_model: Any) -> None:
    from asgiref.sync import sync_to_async

    def start() -> Run:
        owner = django_user_model.objects.create_user(username="doubler", password="pw-12345")
        workflow = workflow_create(owner=owner, name="doubling", graph=transform_graph(DOUBLING))
        run, _ = run_create(workflow=workflow, input={"lead": "x"})
        return run

    with override_settings(KLYNTOS_MAX_OUTPUT_BYTES=1024 * 1024):
        run = await sync_to_async(start)()
        await execute_run(run.pk)

    def ended() -> tuple[Run, StepRun]:
        return Run.objects.get(pk=run.pk), StepRun.objects.get(run_id=run.pk, block_id="t")

    finished, step = await sync_to_async(ended)()
    await sync_to_async(connections.close_all)()
    assert finished.status == "failed"
    assert step.status == "failed"
    assert step.error == (
        "the expression's result is larger than 1048576 bytes (KLYNTOS_MAX_OUTPUT_BYTES)"
    )
