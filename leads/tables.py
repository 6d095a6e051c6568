"""How the admin reads each workflow table: the columns it searches and the order it lists
rows in, across owners (each owner's rows are in their own schema or file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models

from leads.models import EnrichedLead, ImageDescription, PersonalisedEmail


class _Descending:
    """Inverts comparison, so one sort key can hold ascending and descending columns."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Table:
    model: type[models.Model]
    searched: tuple[str, ...]
    order: tuple[tuple[str, bool], ...]  # (column, descending); nulls always last

    @property
    def name(self) -> str:
        return str(self.model._meta.db_table)

    @property
    def columns(self) -> list[str]:
        """Every column but the surrogate key, in the model's order."""
        return [f.column for f in self.model._meta.fields if not f.primary_key]

    def sort_key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """The order of `order` then owner, for rows merged from several owners' files."""
        key: list[Any] = []
        for column, descending in self.order:
            value = row.get(column)
            key += [value is None, _Descending(value) if descending else value]
        return (*key, row["owner_id"])


LEADS = Table(
    EnrichedLead,
    searched=("lead_id", "name", "company", "email", "title"),
    order=(("qualification_score", True), ("lead_id", False)),
)
EMAILS = Table(
    PersonalisedEmail,
    searched=("campaign", "recipient_id", "name", "email", "company", "subject"),
    order=(("campaign", False), ("recipient_id", False)),
)
IMAGES = Table(
    ImageDescription,
    searched=("batch", "image_id", "url", "caption", "tags"),
    order=(("batch", False), ("image_id", False)),
)
