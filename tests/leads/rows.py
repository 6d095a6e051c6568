"""Reading an owner's workflow rows in tests, through the same store the admin uses."""

from __future__ import annotations

from typing import Any

from django.db import connections

from leads import owner_data


def owner_rows(owner: Any) -> list[dict[str, Any]]:
    """Every enriched lead in `owner`'s own data (their schema or file)."""
    return owner_data.store().rows([int(owner.pk)], "", 0, 1_000_000)[0]


def rows_by_lead(owner: Any) -> dict[str, dict[str, Any]]:
    return {row["lead_id"]: row for row in owner_rows(owner)}


def drop_all_owner_data() -> None:
    """Earlier tests' owners keep their schemas (a flush empties only Django's tables): drop
    them, so a test that lists every owner sees its own."""
    owners = owner_data.store()
    if not isinstance(owners, owner_data.PostgresOwners):
        return
    quote = connections[owners.alias].ops.quote_name  # an identifier: it cannot be bound
    with connections[owners.alias].cursor() as cursor:
        for owner in owners.owner_ids():
            cursor.execute(f"DROP SCHEMA {quote(owner_data.schema_name(owner))} CASCADE")
    owner_data.forget_provisioned()
