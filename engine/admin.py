"""Runs, items and steps in the Django admin: read-only, secret values masked by value.

Rows hold what the events carried, masked when they were written; the run's input is the
caller's body as received, and a secret set after a run was never masked in it. So every
field that shows run data is masked again on display with the owner's current secret
values (plus the earlier values of theirs this process's runs read: a rotated secret), as
the API's responses are. Only that owner's: each row with its own owner's values, never
another owner's (a value masked there would confirm a guess at someone else's secret).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from engine import secrets_registry
from engine.models import ItemRun, Run, StepRun


def _masked(name: str, owner_of: Callable[[Any], Any]) -> Callable[[Any], str]:
    def display(obj: Any) -> str:
        value = getattr(obj, name)
        redactor = secrets_registry.owner_redactor(owner_of(obj))
        if isinstance(value, str):
            return redactor.text(value)
        # Escaped by the admin's template like any other text.
        return json.dumps(redactor.value(value), indent=2, ensure_ascii=False, default=str)

    display.short_description = name  # type: ignore[attr-defined]
    return display


class RunDataAdmin(admin.ModelAdmin):
    """Shows every model field read-only; `masked` fields are shown through the mask."""

    masked: tuple[str, ...] = ()

    def __init__(self, model: Any, admin_site: Any) -> None:
        super().__init__(model, admin_site)
        for name in self.masked:
            setattr(self, f"masked_{name}", _masked(name, self.owner_of))

    @staticmethod
    def owner_of(obj: Any) -> Any:
        return obj.run.owner_id

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return [
            f"masked_{f.name}" if f.name in self.masked else f.name for f in self.model._meta.fields
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # run data is a record: viewable (and deletable), never edited


@admin.register(Run)
class RunAdmin(RunDataAdmin):
    masked = ("input", "outputs", "error")
    list_display = (
        "id",
        "workflow",
        "status",
        "total",
        "succeeded",
        "failed",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "trigger")

    @staticmethod
    def owner_of(obj: Any) -> Any:
        return obj.owner_id


@admin.register(ItemRun)
class ItemRunAdmin(RunDataAdmin):
    masked = ("data", "error")
    list_display = ("run", "key", "status", "duration", "failed_block")
    list_filter = ("status",)
    search_fields = ("key",)  # not the error: a search must not probe for a secret's text


@admin.register(StepRun)
class StepRunAdmin(RunDataAdmin):
    masked = ("output", "error", "usage")
    list_display = ("run", "item_key", "name", "status", "attempts", "duration")
    list_filter = ("status", "name")
