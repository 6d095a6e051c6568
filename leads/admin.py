"""The workflow tables in the admin: every owner's rows live in their own schema or file, so
each list is read through `owner_data` rather than one model table. A user sees their own
rows; a superuser sees everyone's, with the owner as a column and a filter. Each list
exports what it shows (the search and owner filter applied, every page) as CSV. A workflow
binds real values into its rows (a key an upstream echoed, a caller's body), so every cell
is shown and exported masked by value with its owner's secrets, like run data."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from engine import secrets_registry
from engine.core.redaction import Redactor
from leads import owner_data
from leads.models import EnrichedLead, ImageDescription, PersonalisedEmail
from leads.tables import EMAILS, IMAGES, LEADS, Table

PER_PAGE = 100
# Rows read per query while a CSV streams: memory stays flat whatever the table's size.
EXPORT_CHUNK = 500
# A cell a spreadsheet would run as a formula (CSV injection): written with a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Counted:
    """A page source for Paginator that fetches only the page it is asked for."""

    def __init__(self, owners: list[int], search: str, table: Table) -> None:
        self.owners, self.search, self.table = owners, search, table
        self.total: int | None = None

    def count(self) -> int:
        if self.total is None:
            self.total = owner_data.store().rows(self.owners, self.search, 0, 0, self.table)[1]
        return self.total

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        start, stop = window.start or 0, window.stop or 0
        return owner_data.store().rows(self.owners, self.search, start, stop - start, self.table)[0]


class _Echo:
    """csv.writer's file: each row comes back as text, for a streamed response."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


class _Masks:
    """Each owner's redactor, built once per page or export: a row is masked with its own
    owner's secrets only (a superuser's list mixes owners), never with another owner's."""

    def __init__(self) -> None:
        self.by_owner: dict[Any, Redactor] = {}

    def cell(self, owner: Any, value: Any) -> Any:
        if owner not in self.by_owner:
            self.by_owner[owner] = secrets_registry.owner_redactor(owner)
        return self.by_owner[owner].value(value)


class OwnerTableAdmin(admin.ModelAdmin):
    """A read-only list over one workflow table in every owner's data."""

    table: Table = LEADS
    listed: list[str] = []
    list_template = "admin/leads/owner_table.html"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)  # scoped to the viewer's own rows below

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = (self.opts.app_label, self.opts.model_name)
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="{}_{}_changelist".format(*info),
            ),
        ]

    def _scope(self, request: HttpRequest) -> tuple[list[int], list[tuple[int, str]], int | None]:
        """The owners whose rows the viewer sees, the owner filter's choices, the chosen one."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        user = request.user
        if not user.is_superuser:
            return [int(str(user.pk))], [], None
        owners = owner_data.store().owner_ids(self.table)
        names = dict(get_user_model().objects.filter(pk__in=owners).values_list("pk", "username"))
        choices = [(o, names.get(o, f"#{o} (deleted)")) for o in owners]
        raw = request.GET.get("owner", "")
        if raw.isdigit() and int(raw) in owners:
            return [int(raw)], choices, int(raw)
        return owners, choices, None

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> TemplateResponse:
        owners, choices, chosen = self._scope(request)
        user = request.user
        search = request.GET.get("q", "").strip()
        paginator: Paginator = Paginator(_Counted(owners, search, self.table), PER_PAGE)  # type: ignore[arg-type]
        page = paginator.get_page(request.GET.get("p"))
        labels = dict(choices) or {int(str(user.pk)): user.get_username()}
        masks = _Masks()
        rows = [
            {
                "owner": labels.get(row["owner_id"], row["owner_id"]),
                "cells": [masks.cell(row["owner_id"], row[c]) for c in self.listed],
            }
            for row in page.object_list
        ]
        fields = {f.column: f.verbose_name for f in self.table.model._meta.fields}
        info = (self.opts.app_label, self.opts.model_name)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": str(self.opts.verbose_name_plural).capitalize(),
            "headers": [fields[c] for c in self.listed],
            "rows": rows,
            "page": page,
            "count": paginator.count,
            "noun": self.opts.verbose_name
            if paginator.count == 1
            else self.opts.verbose_name_plural,
            "search": search,
            "show_owner": user.is_superuser,
            "choices": choices,
            "chosen": chosen,
            "export_url": reverse("admin:{}_{}_export".format(*info)),
        }
        return TemplateResponse(request, self.list_template, context)

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """Every row the list shows (all pages) as CSV, every column; streamed in chunks."""
        owners, choices, _ = self._scope(request)
        search = request.GET.get("q", "").strip()
        labels = dict(choices)
        columns = self.table.columns
        show_owner = bool(request.user.is_superuser)
        masks = _Masks()

        def lines() -> Iterator[str]:
            writer = csv.writer(_Echo())
            yield writer.writerow((["owner"] if show_owner else []) + columns)
            offset = 0
            while True:
                rows, _ = owner_data.store().rows(owners, search, offset, EXPORT_CHUNK, self.table)
                for row in rows:
                    owner = [labels.get(row["owner_id"], row["owner_id"])] if show_owner else []
                    cells = [csv_cell(masks.cell(row["owner_id"], row[c])) for c in columns]
                    yield writer.writerow(owner + cells)
                if len(rows) < EXPORT_CHUNK:
                    return
                offset += EXPORT_CHUNK

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.table.name}.csv"'
        return response


@admin.register(EnrichedLead)
class EnrichedLeadAdmin(OwnerTableAdmin):
    table = LEADS
    listed = [
        "lead_id",
        "name",
        "company",
        "title",
        "company_size",
        "urgency_level",
        "qualification_score",
        "enriched_at",
    ]


@admin.register(PersonalisedEmail)
class PersonalisedEmailAdmin(OwnerTableAdmin):
    table = EMAILS
    listed = ["campaign", "recipient_id", "name", "email", "subject", "created_at"]


@admin.register(ImageDescription)
class ImageDescriptionAdmin(OwnerTableAdmin):
    table = IMAGES
    listed = ["batch", "image_id", "url", "caption", "quality", "described_at"]
