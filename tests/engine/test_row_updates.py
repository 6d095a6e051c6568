"""Updates compiled once per shape (engine/row_updates.py): every statement a `RowUpdate`
gives is the one Django compiles for the same rows and values, whether it came from the
cache or not, and the chunk stores' shapes really are shared between chunks."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from builder.services import run_create, workflow_create
from engine import row_updates
from engine.chunks import ChunkStore
from engine.models import FINAL_STATUSES, LoopChunk, Run, RunStatus
from engine.row_updates import RowUpdate, update_statement
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(databases=["default", "data"])


@pytest.fixture
def compiles(monkeypatch: Any) -> list[int]:
    """Counts Django's compilations of an update."""
    calls: list[int] = []

    def counted(rows: Any, values: dict[str, Any]) -> Any:
        calls.append(1)
        return update_statement(rows, values)

    monkeypatch.setattr(row_updates, "update_statement", counted)
    monkeypatch.setattr(row_updates, "_SHARED", {})
    return calls


def new_run(owner: Any) -> Run:
    workflow = workflow_create(owner=owner, name="rows", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": [{"v": 1}]})
    return run


def chunk(run: Run, number: int, owner: str) -> LoopChunk:
    return LoopChunk.objects.create(
        run=run, loop_block="loop", number=number, indexes=[number], lease_owner=owner
    )


def same(statement: Any, expected: Any) -> None:
    assert statement[0] == expected[0]
    assert [repr(p) for p in statement[1]] == [repr(p) for p in expected[1]]


def test_the_same_rows_are_compiled_once_per_set_of_columns(owner: Any, compiles: list[int]):
    run = new_run(owner)
    rows = Run.objects.filter(pk=run.pk).exclude(status__in=FINAL_STATUSES)
    update = RowUpdate(rows)
    batches = [
        {"status": RunStatus.RUNNING, "succeeded": 1, "lease_expires": timezone.now()},
        {"status": RunStatus.RUNNING, "succeeded": 2, "lease_expires": timezone.now()},
        {"status": RunStatus.RUNNING, "succeeded": 3, "lease_expires": None},  # NULL: new SQL
        {"status": RunStatus.RUNNING, "succeeded": 4, "lease_expires": None},
    ]
    for values in batches:
        same(update.statement(values), update_statement(rows, values))
    assert len(compiles) == 2  # the first of each set of columns


def test_an_expression_is_left_to_django(owner: Any, compiles: list[int]) -> None:
    run = new_run(owner)
    rows = Run.objects.filter(pk=run.pk)
    update = RowUpdate(rows)
    for _ in range(2):
        sql, params = update.statement({"succeeded": F("succeeded") + 1})
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    assert len(compiles) == 2
    assert Run.objects.get(pk=run.pk).succeeded == 2


@pytest.mark.parametrize("which", ["_live_rows", "_release_update"])
def test_a_worker_s_chunks_share_their_row_updates(
    owner: Any, compiles: list[int], which: str
) -> None:
    run = new_run(owner)
    stores = [
        ChunkStore(run.pk, chunk(run, n, f"worker-{n}").pk, "loop", f"worker-{n}") for n in range(3)
    ]
    for n, store in enumerate(stores):
        store.outcome = (LoopChunk.Status.DONE, "")
        if which == "_live_rows":
            update, values = store._live_rows(), {"lease_expires": timezone.now(), "failed": n}
        else:
            update, values = store._release_update()
            values["failed"] = n
        statement = update.statement(values)
        same(statement, update_statement(update.rows, values))
        with connection.cursor() as cursor:
            cursor.execute(*statement)
            assert cursor.rowcount == 1  # this chunk's row, no other
    assert len(compiles) == 1
    assert [c.failed for c in LoopChunk.objects.filter(run=run).order_by("number")] == [0, 1, 2]


def test_a_shape_given_the_wrong_parameters_is_compiled_every_time(
    owner: Any, compiles: list[int]
) -> None:
    run = new_run(owner)
    chunks = [chunk(run, n, f"worker-{n}") for n in range(2)]
    for c in chunks:
        rows = LoopChunk.objects.filter(pk=c.pk, lease_owner=c.lease_owner)
        update = RowUpdate(rows, shape="wrong", where=[c.pk, c.lease_owner])  # Django: owner first
        for failed in (5, 6):
            statement = update.statement({"failed": failed})
            same(statement, update_statement(rows, {"failed": failed}))
            with connection.cursor() as cursor:
                cursor.execute(*statement)
                assert cursor.rowcount == 1
    assert len(compiles) == 4
    assert [c.failed for c in LoopChunk.objects.filter(run=run)] == [6, 6]
