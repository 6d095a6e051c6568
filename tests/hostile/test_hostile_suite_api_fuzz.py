"""API fuzzing: schemathesis generates requests for every operation of the served OpenAPI
schema (`/api/schema/`, drf-spectacular) and runs them through the real Django application
(WSGI, the real PostgreSQL), as a signed-in user. No answer may be a 5xx, and every answer
must be one the schema declares: its status, its content type, its body's shape, and a 405
for a method an operation does not have. The schema side of this is `builder/api_schema.py`.

A second test calls every operation on real objects (a workflow, a run with items, a
template, a secret), where random ids would only ever meet 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from builder import services
from engine.models import ItemRun, StepRun

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.unsupported_method,
]
# Hypothesis examples per operation: about 20 operations, under a minute in all.
EXAMPLES = 12


@pytest.fixture
def auth(user: Any) -> Iterator[dict[str, str]]:
    """A token header, and the WSGI handler kept inside the test's transaction: like
    Django's test client, stop it closing the connection at each request's start and end
    (inside a test's transaction that would close it for good)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # `auth` is one token for all examples of a test: sharing it is intended.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    derandomize=True,  # the same requests on every run: a failure reproduces
)
def test_every_operation_answers_as_declared(case: Any, auth: dict[str, str]) -> None:
    case.call_and_validate(headers=auth, checks=CHECKS)


def test_the_schema_covers_every_api_route() -> None:
    """Every operation of the URL conf's /api/ views is in the schema being fuzzed."""
    paths = {result.ok().path for result in schema.get_all_operations()}
    assert {
        "/api/workflows/",
        "/api/workflows/{id}/",
        "/api/workflows/{id}/validate/",
        "/api/workflows/{id}/duplicate/",
        "/api/workflows/{id}/runs/",
        "/api/workflows/{id}/webhook/secret/",
        "/api/runs/{id}/",
        "/api/runs/{id}/items/",
        "/api/runs/{id}/cancel/",
        "/api/blocks/",
        "/api/templates/",
        "/api/templates/{slug}/instantiate/",
        "/api/secrets/",
    } <= paths


@pytest.mark.django_db
def test_every_operation_on_real_objects_answers_as_declared(
    user: Any, auth: dict[str, str], lead_workflow: Any
) -> None:
    run, _ = services.run_create(workflow=lead_workflow, input={"leads": []})
    ItemRun.objects.create(
        run=run, key="loop[0]", loop_block="loop", index=0, status="failed", error="x"
    )
    StepRun.objects.create(
        run=run, item_key="loop[0]", block_id="agent_analysis", name="agent", status="failed"
    )
    ids = {"id": lead_workflow.pk}
    calls: list[tuple[str, str, dict[str, Any], Any]] = [
        ("/api/workflows/", "GET", {}, None),
        ("/api/workflows/", "POST", {}, {"name": "fuzzed"}),
        ("/api/workflows/{id}/", "GET", ids, None),
        ("/api/workflows/{id}/", "PATCH", ids, {"name": "renamed"}),
        ("/api/workflows/{id}/", "PUT", ids, {"graph": {"blocks": []}, "base_version": 99}),
        ("/api/workflows/{id}/validate/", "POST", ids, {}),
        ("/api/workflows/{id}/duplicate/", "POST", ids, None),
        ("/api/workflows/{id}/runs/", "GET", ids, None),
        ("/api/workflows/{id}/runs/", "POST", ids, {"input": {"leads": [{"id": 1}]}}),
        ("/api/workflows/{id}/webhook/secret/", "POST", ids, None),
        ("/api/workflows/{id}/webhook/secret/", "DELETE", ids, None),
        ("/api/runs/{id}/", "GET", {"id": str(run.pk)}, None),
        ("/api/runs/{id}/items/", "GET", {"id": str(run.pk)}, None),
        ("/api/runs/{id}/cancel/", "POST", {"id": str(run.pk)}, None),
        ("/api/blocks/", "GET", {}, None),
        ("/api/templates/", "GET", {}, None),
        ("/api/templates/{slug}/instantiate/", "POST", {"slug": "parallel-lead-enrichment"}, {}),
        ("/api/templates/{slug}/instantiate/", "POST", {"slug": "no-such-template"}, {}),
        ("/api/secrets/", "POST", {}, {"name": "FUZZ_KEY", "value": "fuzz-value"}),
        ("/api/secrets/", "GET", {}, None),
        ("/api/workflows/{id}/", "DELETE", ids, None),
    ]
    statuses = []
    for path, method, path_parameters, body in calls:
        operation = schema[path][method]
        kwargs: dict[str, Any] = {"path_parameters": path_parameters}
        if body is not None:
            kwargs.update(body=body, media_type="application/json")
        case = operation.Case(**kwargs)
        response = case.call_and_validate(headers=auth, checks=CHECKS)
        statuses.append((method, path, response.status_code))
    assert [s for _, _, s in statuses] == [
        200, 201, 200, 200, 409, 200, 201, 200, 422, 201, 204,
        200, 200, 200, 200, 200, 201, 404, 201, 200, 204,
    ], statuses  # fmt: skip
