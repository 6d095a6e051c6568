"""Big JSON documents are encoded in slices, to exactly the text json.dumps makes, and
stored through an expression the JSONField column accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from builder.services import run_create, workflow_create
from engine.json_text import dumps_in_slices, json_expression
from engine.models import Run
from tests.engine.graphs import burst_graph

DOCUMENTS: list[Any] = [
    {},
    [],
    {"loop": {"results": [{"index": i, "item": {"v": i}} for i in range(2500)], "count": 2500}},
    [[i, {"x": [i] * 3}] for i in range(1001)],
    {"a": [1.5, None, True, "é\\u0000\x00"], "b": {"c": list(range(3000))}, 1: "int key"},
    {"nan": float("nan"), "text": "\ud800 lone surrogate"},
    list(range(1000)),
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_text_is_what_json_dumps_makes(document: Any) -> None:
    assert dumps_in_slices(document, slice_size=1000) == json.dumps(document)
    assert dumps_in_slices(document, slice_size=7) == json.dumps(document)


@pytest.mark.django_db(databases=["default"])
def test_the_expression_stores_the_document_in_a_json_column(user: Any) -> None:
    workflow = workflow_create(owner=user, name="json", graph=burst_graph())
    run, _ = run_create(workflow=workflow, input={"items": []})
    outputs = {"loop": {"results": [{"index": i} for i in range(2500)], "label": "ü'\""}}
    Run.objects.filter(pk=run.pk).update(
        outputs=json_expression(outputs), finished_at=timezone.now()
    )
    run.refresh_from_db()
    assert run.outputs == outputs
    assert Run.objects.filter(pk=run.pk, outputs__loop__label="ü'\"").exists()
