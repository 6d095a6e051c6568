"""How a loop going out to workers is cut (engine/chunks.py `chunk_size`): about
KLYNTOS_LOOP_CHUNKS_PER_WORKER chunks for each worker whose heartbeat is recent, never
smaller than KLYNTOS_LOOP_CHUNK_SIZE nor larger than KLYNTOS_LOOP_CHUNK_MAX; and what a
chunk given back counts toward MAX_EXECUTIONS."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from builder.services import run_create, workflow_create
from engine.chunks import ChunkStore, chunk_size, claim, live_workers
from engine.jobs import WORKER_QUEUES
from engine.models import LoopChunk
from tests.engine.graphs import burst_graph

pytestmark = pytest.mark.django_db(databases=["default", "data"])


def workers(fresh: int, stale: int) -> None:
    """Rows as worker processes leave them: one per queue each serves."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_workers")
        for _ in range(fresh * len(WORKER_QUEUES)):
            cursor.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now())")
        for _ in range(
            stale * len(WORKER_QUEUES)
        ):  # a killed worker's row, its heartbeat a minute old
            cursor.execute(
                "INSERT INTO procrastinate_workers (last_heartbeat)"
                " VALUES (now() - interval '60 seconds')"
            )


@pytest.mark.parametrize(
    ("fresh", "stale", "total", "size", "smallest"),
    [
        (1, 0, 2_000, 500, 100),  # one worker: four chunks
        (2, 0, 2_000, 250, 100),  # two: four each
        (2, 3, 2_000, 250, 100),  # dead workers are not counted
        (0, 0, 2_000, 500, 100),  # none seen yet (the coordinator is one): as for one
        (2, 0, 500, 100, 100),  # never smaller than KLYNTOS_LOOP_CHUNK_SIZE
        (1, 0, 100_000, 2_000, 100),  # never larger than KLYNTOS_LOOP_CHUNK_MAX
        (1, 0, 100_000, 5_000, 5_000),  # ... unless KLYNTOS_LOOP_CHUNK_SIZE is larger
    ],
)
def test_a_loop_is_cut_in_a_few_chunks_per_live_worker(
    settings: Any, fresh: int, stale: int, total: int, size: int, smallest: int
) -> None:
    settings.KLYNTOS_LOOP_CHUNK_SIZE = smallest
    settings.KLYNTOS_LOOP_CHUNKS_PER_WORKER = 4
    settings.KLYNTOS_LOOP_CHUNK_MAX = 2_000
    workers(fresh, stale)
    assert live_workers() == fresh
    assert chunk_size(total) == size


@pytest.mark.django_db(transaction=True, databases=["default", "data"])  # the thread's checks
@pytest.mark.parametrize("path", ["thread", "loop"])
@pytest.mark.parametrize(("stopped", "executions"), [(True, 0), (False, 1)])
def test_a_chunk_given_back_by_a_stop_is_not_an_unfinished_execution(
    owner: Any, path: str, stopped: bool, executions: int
) -> None:
    """A deploy's SIGTERM gives a chunk back: with chunks of hundreds of items, counting that
    toward MAX_EXECUTIONS would fail them all after three restarts. A failure still counts."""
    workflow = workflow_create(owner=owner, name="chunks", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": [{"v": 1}]})
    chunk = LoopChunk.objects.create(run=run, loop_block="loop", number=0, indexes=[0])
    assert claim(chunk.pk, "worker-1:1") is not None
    store = ChunkStore(run.pk, chunk.pk, "loop", "worker-1:1")
    store.stopped = stopped
    store.outcome = (LoopChunk.Status.RELEASED, "" if stopped else "RuntimeError: boom")
    if path == "thread":
        store._release()
    else:  # the statement `suspend` sends from the event loop
        rows, values = store._release_update()
        with connection.cursor() as cursor:
            cursor.execute(*rows.statement(values))
    chunk.refresh_from_db()
    assert (chunk.status, chunk.lease_owner, chunk.executions) == ("released", "", executions)
