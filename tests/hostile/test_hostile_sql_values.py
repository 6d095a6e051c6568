"""Finding 8 (issue 7): on PostgreSQL a database block returning `inet` or `interval` values
left the run `queued` forever — the store could not encode them and dropped every batch.
Every value a database can return is stored (as text when JSON has no exact form), and a
batch the store cannot encode is stored as text rather than lost, so a run always ends."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from builder.services import run_create, workflow_create
from engine.core.events import Event
from engine.models import Run, StepRun
from engine.runner import execute_run
from engine.store import RunStore

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])

# Each PostgreSQL type with the JSON value it must be stored as.
VALUES: dict[str, tuple[str, Any]] = {
    "host": ("'10.1.2.3/24'::inet", "10.1.2.3/24"),
    "net": ("'10.0.0.0/8'::cidr", "10.0.0.0/8"),
    "span": ("interval '1 mon 2 days 03:04:05'", "1 mon 2 days 03:04:05"),
    "hosts": ("ARRAY['10.0.0.1'::inet, '::1'::inet]", ["10.0.0.1", "::1"]),
    "spans": ("ARRAY[interval '1 hour']", ["01:00:00"]),
    "mac": ("'08:00:2b:01:02:03'::macaddr", "08:00:2b:01:02:03"),
    "window": ("int4range(1, 5)", "[1,5)"),
    "days": ("daterange('2024-01-01', '2024-02-01')", "[2024-01-01,2024-02-01)"),
    "exact": ("3.14159265358979323846::numeric", "3.14159265358979323846"),
    "price": ("8.50::numeric", 8.5),
    "huge": ("1e40::numeric", "10000000000000000000000000000000000000000"),
    "not_a_number": ("'NaN'::numeric", "NaN"),
    "infinite": ("'Infinity'::float8", "Infinity"),
    "forever": ("'infinity'::date", "infinity"),
    "end_of_day": ("'24:00'::time", "24:00:00"),
    "when": ("'2024-05-01 12:00+00'::timestamptz", "2024-05-01T12:00:00+00:00"),
    "raw": ("'\\x00ff'::bytea", "00ff"),
    "id": ("'00000000-0000-0000-0000-000000000001'::uuid", "00000000-0000-0000-0000-000000000001"),
    "point": ("'(1,2)'::point", "(1,2)"),
    "words": ("'a b'::tsvector", "'a' 'b'"),
    "money": ("'1.50'::money", "$1.50"),
    "record": ("ROW(1, 'a')", ["1", "a"]),
    "doc": ("'{\"n\": 1}'::jsonb", {"n": 1}),
    "nul_text": ("'a' || chr(1) || 'b'", "a\x01b"),
}


def run_sql(owner: Any, sql: str) -> Run:
    graph = {
        "blocks": [
            {"id": "webhook", "type": "webhook", "name": "webhook", "config": {}},
            {"id": "q", "type": "database", "name": "q", "config": {"sql": sql}},
        ],
        "edges": [{"source": "webhook", "target": "q"}],
    }
    workflow = workflow_create(owner=owner, name="sql", graph=graph)
    run, _ = run_create(workflow=workflow, input={})
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def test_hostile_sql_every_postgresql_value_type_is_stored_and_the_run_ends(user: Any) -> None:
    sql = "SELECT " + ", ".join(f"{expr} AS {name}" for name, (expr, _) in VALUES.items())
    run = run_sql(user, sql)
    expected = [{name: value for name, (_, value) in VALUES.items()}]
    assert run.status == "succeeded", run.error
    assert run.outputs["q"]["rows"] == expected
    assert StepRun.objects.get(run=run, block_id="q").output["rows"] == expected


def test_hostile_sql_a_batch_the_store_cannot_encode_is_stored_as_text(user: Any) -> None:
    """Values no block should hand the store (an object JSON cannot encode, NaN that jsonb
    refuses) are stored as text: the batch is not lost and the run is not left `queued`."""
    run = run_sql(user, "SELECT 1 AS one")
    Run.objects.filter(pk=run.pk).update(status="queued", finished_at=None, outputs={})
    StepRun.objects.filter(run=run).delete()
    odd = {"address": ipaddress.ip_address("10.0.0.1"), "ratio": float("nan"), "set": {1}}

    async def store_events() -> None:
        store = RunStore(run.pk, publish=False)
        store.start()
        now = time.time()
        for seq, (kind, data) in enumerate(
            [
                ("run.started", {}),
                ("step.started", {"block": "q", "name": "q"}),
                ("step.finished", {"block": "q", "name": "q", "output": odd, "attempts": 1}),
                ("run.finished", {"status": "succeeded"}),
            ],
            start=1,
        ):
            store.sink(Event(seq, kind, now, data))  # type: ignore[arg-type]
        await store.close({"outputs": {"q": odd}})
        await sync_to_async(connections.close_all)()

    asyncio.run(store_events())
    run.refresh_from_db()
    as_text = {"address": "10.0.0.1", "ratio": "NaN", "set": "{1}"}
    assert run.status == "succeeded" and run.finished_at is not None
    assert run.outputs == {"q": as_text}
    assert StepRun.objects.get(run=run, block_id="q").output == as_text
