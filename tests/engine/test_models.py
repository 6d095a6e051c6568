"""The run's row tables carry no index another one already covers: a loop writes thousands of
rows a second, and each row costs an entry in every index of its table."""

from __future__ import annotations

import pytest
from django.db import connection

from engine.models import ItemRun, StepRun

pytestmark = pytest.mark.django_db


def index_columns(table: str) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {
        name: list(found["columns"])
        for name, found in constraints.items()
        if found["index"] or found["unique"] or found["primary_key"]
    }


@pytest.mark.parametrize("model", [ItemRun, StepRun])
def test_no_index_of_the_row_tables_is_the_start_of_another(model: type) -> None:
    indexes = index_columns(model._meta.db_table)
    covered = {
        name: other
        for name, columns in indexes.items()
        for other, longer in indexes.items()
        if other != name and longer[: len(columns)] == columns
    }
    assert covered == {}, f"{model.__name__}: indexes covered by another one: {covered}"
    # The rows of one run are still found through an index that starts with the run.
    assert any(columns[0] == "run_id" for columns in indexes.values())
