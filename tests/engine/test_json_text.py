"""Big JSON documents are encoded in slices, to exactly the text json.dumps makes, and
stored through an expression the JSONField column accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from builder.services import run_create, workflow_create
from engine.json_text import dumps_in_slices, dumps_rows, json_expression
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


ROWS: list[Any] = [
    [],
    [{"key": f"loop[{i}]", "data": {"v": i / 3, "name": "Zoë ✓ a/b"}} for i in range(450)],
    [{"output": {"body": [1e300, -0.0, 5e-324, 10**20, True, None, "\u2028"]}}],
]


@pytest.mark.parametrize("rows", ROWS)
def test_a_rows_document_parses_to_the_rows(rows: list[Any]) -> None:
    for size in (200, 7):
        assert json.loads(dumps_rows(rows, size)) == rows


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), {1, 2}, b"x"])
def test_a_rows_document_refuses_what_jsonb_cannot_hold(value: Any) -> None:
    """json.dumps would write NaN and Infinity, which jsonb then refuses: here they fail at
    once, so the store's fallback stores them as text either way."""
    with pytest.raises((OverflowError, TypeError, ValueError)):
        dumps_rows([{"ok": 1}, {"data": value}], 200)


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
