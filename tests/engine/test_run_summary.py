"""A run's summary has one shape wherever it is read: the REST list and detail (the DRF
serializer, which also documents it in the OpenAPI schema) and the sockets
(engine.snapshots.run_summary). A field added to one and not the other fails here."""

from __future__ import annotations

from typing import Any

import pytest

from builder.serializers import RunSerializer, RunSummarySerializer
from engine.models import Run
from engine.snapshots import run_summary
from tests.engine.test_resume import lookups

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "data"])


def same_times(summary: dict[str, Any]) -> dict[str, Any]:
    """DRF writes UTC as `Z`, isoformat() as `+00:00`: the same instant."""
    return {
        k: v.replace("+00:00", "Z") if isinstance(v, str) and k.endswith("_at") else v
        for k, v in summary.items()
    }


def test_the_socket_summary_and_the_rest_summary_agree(owner: Any) -> None:
    first = lookups(owner, 2)
    retry = Run.objects.create(
        owner=owner,
        workflow_id=first.workflow_id,
        version_id=first.version_id,
        input=first.input,
        trigger="retry",
        retry_of=first,
    )
    for run in (first, retry):
        run = Run.objects.select_related("version").get(pk=run.pk)
        rest = dict(RunSummarySerializer(run).data)
        rest["workflow_version"] = int(rest["workflow_version"])
        # The cost line is computed per request from the stored rows (builder/run_costs.py):
        # the socket's summary, read by the engine, goes without it.
        assert rest.pop("summary") is not None
        assert same_times(run_summary(run)) == same_times(rest)
        assert set(RunSerializer(run).data) == set(rest) | {"outputs", "summary"}
    assert run_summary(first)["retries"] == [str(retry.pk)]
    assert run_summary(retry)["retry_of"] == str(first.pk)
