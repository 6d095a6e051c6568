"""The enriched leads in the admin: every owner's rows live in their own schema or file, so
the list is read through `owner_data` rather than one model table. A user sees their own
rows; a superuser sees everyone's, with the owner as a column and a filter."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from leads import owner_data
from leads.models import EnrichedLead

PER_PAGE = 100
LISTED = [
    "lead_id",
    "name",
    "company",
    "title",
    "company_size",
    "urgency_level",
    "qualification_score",
    "enriched_at",
]


class _Counted:
    """A page source for Paginator that fetches only the page it is asked for."""

    def __init__(self, owners: list[int], search: str) -> None:
        self.owners, self.search = owners, search
        self.total: int | None = None

    def count(self) -> int:
        if self.total is None:
            self.total = owner_data.store().rows(self.owners, self.search, 0, 0)[1]
        return self.total

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        start, stop = window.start or 0, window.stop or 0
        return owner_data.store().rows(self.owners, self.search, start, stop - start)[0]


@admin.register(EnrichedLead)
class EnrichedLeadAdmin(admin.ModelAdmin):
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
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        user = request.user
        search = request.GET.get("q", "").strip()
        owners = [int(str(user.pk))]
        choices: list[tuple[int, str]] = []
        chosen = None
        if user.is_superuser:
            owners = owner_data.store().owner_ids()
            names = dict(
                get_user_model().objects.filter(pk__in=owners).values_list("pk", "username")
            )
            choices = [(o, names.get(o, f"#{o} (deleted)")) for o in owners]
            raw = request.GET.get("owner", "")
            if raw.isdigit() and int(raw) in owners:
                chosen = int(raw)
                owners = [chosen]
        paginator: Paginator = Paginator(_Counted(owners, search), PER_PAGE)  # type: ignore[arg-type]
        page = paginator.get_page(request.GET.get("p"))
        labels = dict(choices) or {int(str(user.pk)): user.get_username()}
        rows = [
            {
                "owner": labels.get(row["owner_id"], row["owner_id"]),
                "cells": [row[c] for c in LISTED],
            }
            for row in page.object_list
        ]
        fields = {f.column: f.verbose_name for f in EnrichedLead._meta.fields}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Enriched leads",
            "headers": [fields[c] for c in LISTED],
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
        }
        return TemplateResponse(request, "admin/leads/enrichedlead/change_list.html", context)
