"""A batch of a run's rows is one upsert: inserted with the model's defaults, updated in place
on the unique fields, values stored exactly as the ORM stores them."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from builder.services import run_create, workflow_create
from engine.models import ItemRun, Run, StepRun
from engine.store import ITEM_ROWS, STEP_ROWS
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(databases=["default", "data"])

AT = dt.datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=dt.UTC)


def new_run(owner: Any) -> Run:
    workflow = workflow_create(owner=owner, name="rows", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": []})
    return run


def test_items_are_inserted_with_defaults_then_updated_in_place(owner: Any) -> None:
    run = new_run(owner)
    data = {"name": "Zoë ✓", "nested": [1, None, {"x": 1.5}], "quote": "a\"b\\c'd"}
    ITEM_ROWS.upsert(
        run.pk,
        [
            {"key": "loop[0]", "loop_block": "loop", "index": 0, "data": data, "started_at": AT},
            {"key": "loop[1]", "loop_block": "loop", "data": None},
        ],
    )
    first = ItemRun.objects.get(run=run, key="loop[0]")
    assert first.status == "running" and first.data == data and first.started_at == AT
    assert (first.error, first.failed_block, first.finished_at, first.duration) == (
        "",
        "",
        None,
        None,
    )
    second = ItemRun.objects.get(run=run, key="loop[1]")
    assert second.index == 0 and second.data is None  # SQL NULL, as the ORM stores None
    assert ItemRun.objects.filter(run=run, data__isnull=True).count() == 1

    done = AT + dt.timedelta(seconds=2)
    ITEM_ROWS.upsert(
        run.pk,
        [
            {
                "key": "loop[0]",
                "loop_block": "loop",
                "index": 0,
                "data": data,
                "started_at": AT,
                "status": "failed",
                "error": "boom",
                "failed_block": "fetch",
                "finished_at": done,
                "duration": 2.0,
            }
        ],
    )
    assert ItemRun.objects.filter(run=run).count() == 2
    first.refresh_from_db()
    assert (first.status, first.error, first.failed_block) == ("failed", "boom", "fetch")
    assert first.finished_at == done and first.duration == 2.0 and first.started_at == AT
    assert first.id == ItemRun.objects.get(run=run, key="loop[0]").id  # updated, not replaced


def test_steps_keep_their_json_columns_and_flags(owner: Any) -> None:
    run = new_run(owner)
    usage = [{"model": "gpt-4o-mini", "prompt_tokens": 12}]
    row = {"item_key": "loop[0]", "block_id": "fetch", "name": "fetch", "started_at": AT}
    STEP_ROWS.upsert(run.pk, [row, {"item_key": "", "block_id": "hook", "name": "hook"}])
    step = StepRun.objects.get(run=run, block_id="fetch")
    assert (step.status, step.output, step.usage, step.saved_usage, step.redacted) == (
        "running",
        None,
        [],
        [],
        False,
    )
    ended = {**row, "status": "succeeded", "output": {"body": ["ok"]}, "usage": usage}
    STEP_ROWS.upsert(run.pk, [{**ended, "redacted": True, "attempts": 2, "cache": "miss"}])
    step.refresh_from_db()
    assert step.output == {"body": ["ok"]} and step.usage == usage
    assert (step.status, step.redacted, step.attempts, step.cache) == ("succeeded", True, 2, "miss")
    assert StepRun.objects.filter(run=run).count() == 2


def test_a_value_the_column_cannot_take_fails_the_statement(owner: Any) -> None:
    """The store's fallback (its values as text) relies on the batch failing, not on a
    silently altered value."""
    run = new_run(owner)
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017 -- the driver's error
        ITEM_ROWS.upsert(run.pk, [{"key": "loop[0]", "loop_block": "loop", "data": "a\x00b"}])
    with pytest.raises(IntegrityError), transaction.atomic():
        ITEM_ROWS.upsert(run.pk, [{"key": "loop[0]", "loop_block": "loop", "error": None}])
    assert not ItemRun.objects.filter(run=run).exists()


def test_times_are_stored_to_the_microsecond(owner: Any) -> None:
    """Times travel as seconds since the epoch (to_timestamp): every microsecond of a day
    spread over this century comes back as it was, in any time zone it was given in."""
    run = new_run(owner)
    rng = random.Random(6)
    east = dt.timezone(dt.timedelta(hours=5, minutes=30))
    times = [
        dt.datetime(
            2000 + rng.randrange(100),
            1 + rng.randrange(12),
            1 + rng.randrange(28),
            rng.randrange(24),
            rng.randrange(60),
            rng.randrange(60),
            rng.randrange(1_000_000),
            tzinfo=dt.UTC if i % 2 else east,
        )
        for i in range(500)
    ] + [dt.datetime(2026, 12, 5, 23, 59, 59, 999_999, tzinfo=dt.UTC)]
    rows = [
        {"key": f"loop[{i}]", "loop_block": "loop", "index": i, "started_at": t}
        for i, t in enumerate(times)
    ]
    ITEM_ROWS.upsert(run.pk, rows)
    stored = dict(ItemRun.objects.filter(run=run).values_list("index", "started_at"))
    assert [stored[i] for i in range(len(times))] == times


def test_times_given_as_epoch_seconds_are_stored_as_those_moments(owner: Any) -> None:
    """The store's rows hold the events' epoch seconds; other callers give datetimes."""
    run = new_run(owner)
    ITEM_ROWS.upsert(
        run.pk,
        [{"key": "loop[0]", "loop_block": "loop", "started_at": AT.timestamp(), "finished_at": AT}],
    )
    item = ItemRun.objects.get(run=run, key="loop[0]")
    assert item.started_at == item.finished_at == AT


def test_a_row_with_every_column_is_sent_as_it_is_and_never_changed(owner: Any) -> None:
    """The store's rows carry every column: no defaults are merged into them, and a
    datetime among them is sent as epoch seconds without being written into the row."""
    run = new_run(owner)
    ITEM_ROWS.fields()
    full = {**ITEM_ROWS._base, "key": "loop[1]", "loop_block": "loop", "index": 1}
    full |= {"status": "succeeded", "started_at": AT, "finished_at": AT.timestamp()}
    before = dict(full)
    ITEM_ROWS.upsert(run.pk, [full, {"key": "loop[2]", "loop_block": "loop", "index": 2}])
    assert full == before and full["started_at"] is AT
    stored = {i.key: i for i in ItemRun.objects.filter(run=run)}
    assert stored["loop[1]"].started_at == stored["loop[1]"].finished_at == AT
    assert stored["loop[1]"].status == "succeeded"
    assert stored["loop[2]"].status == ItemRun._meta.get_field("status").get_default()
