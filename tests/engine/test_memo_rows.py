"""A run's memo read back from its stored rows (engine/memo_rows.py)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.memo import StoredStep
from engine.memo_rows import memo_for_items
from engine.models import ItemRun, StepRun
from tests.engine.test_upsert import new_run

pytestmark = pytest.mark.django_db(databases=["default", "data"])


def test_a_slice_of_items_is_read_with_or_without_its_steps_outputs(owner: Any) -> None:
    run = new_run(owner)
    for index in range(12):
        StepRun.objects.create(
            run=run,
            item_key=f"loop[{index}]",
            block_id="fetch",
            name="fetch",
            status="succeeded",
            output={"body": "x" * 100, "index": index},
            attempts=2,
            duration=0.5,
        )
    StepRun.objects.create(
        run=run, item_key="loop[1]", block_id="save", name="save", status="failed"
    )
    ItemRun.objects.create(
        run=run,
        key="loop[1]",
        loop_block="loop",
        index=1,
        status="failed",
        failed_block="save",
        error="no",
    )

    ItemRun.objects.create(
        run=run, key="loop[11]", loop_block="loop", index=11, status="failed", error="other"
    )

    whole = memo_for_items(run.pk, "loop", [0, 1])
    bare = memo_for_items(run.pk, "loop", [0, 1], outputs=False)

    assert set(whole.steps) == set(bare.steps) == {("loop[0]", "fetch"), ("loop[1]", "fetch")}
    assert whole.steps[("loop[0]", "fetch")].output == {"body": "x" * 100, "index": 0}
    assert bare.steps[("loop[0]", "fetch")].output is None
    # Read by the loop's key prefix, then picked: loop[10] and loop[11] share loop[1]'s
    # first characters and are still not in the slice asked for.
    assert bare.steps[("loop[0]", "fetch")] == StoredStep(None)
    assert bare.failures == whole.failures and set(bare.failures) == {"loop[1]"}


def test_a_retry_takes_its_sources_steps_as_reused_and_a_resume_keeps_what_each_was(
    owner: Any,
) -> None:
    """A retry's step from the run it repeats made no call of the retry's: its `usage` is
    empty, the source's calls are `saved_usage` under `cache` "reused" (engine/run_costs.py
    leaves them out). A resumed run's own steps are its own, cache hits stay hits."""
    from engine.core.graph import parse_graph
    from engine.memo_rows import memo_for_resume, memo_for_retry
    from tests.engine.graphs import burst_graph

    used = [{"model": "m", "prompt_tokens": 3, "completion_tokens": 1}]
    source = new_run(owner)

    def square(index: int, **row: Any) -> None:
        StepRun.objects.create(
            run=source,
            item_key=f"loop[{index}]",
            block_id="square",
            name="square",
            status="succeeded",
            output=index + 1,
            **row,
        )

    square(0, usage=used, duration=0.4)
    square(1, cache="hit", saved_usage=used)
    square(2, cache="reused", saved_usage=used)
    graph = parse_graph(burst_graph())
    retry = memo_for_retry(source.pk, graph).steps
    assert retry[("loop[0]", "square")] == StoredStep(1, 1, [], 0.4, "reused", used)
    assert retry[("loop[1]", "square")] == StoredStep(2, 1, [], None, "reused", [])  # a hit
    assert retry[("loop[2]", "square")] == StoredStep(3, 1, [], None, "reused", used)
    resumed = memo_for_resume(source.pk, graph).steps
    assert resumed[("loop[0]", "square")] == StoredStep(1, 1, used, 0.4)
    assert resumed[("loop[1]", "square")] == StoredStep(2, 1, [], None, "hit", used)
    assert resumed[("loop[2]", "square")] == StoredStep(3, 1, [], None, "reused", used)
