"""How a loop going out to workers is cut (engine/chunks.py `chunk_size`): about
KLYNTOS_LOOP_CHUNKS_PER_WORKER chunks for each worker whose heartbeat is recent, never
smaller than KLYNTOS_LOOP_CHUNK_SIZE nor larger than KLYNTOS_LOOP_CHUNK_MAX."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from engine.chunks import chunk_size, live_workers
from engine.jobs import WORKER_QUEUES

pytestmark = pytest.mark.django_db


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
