from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from builder.models import Secret, Webhook, Workflow, WorkflowVersion


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "template_slug", "updated_at")
    search_fields = ("name",)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    list_display = ("workflow", "number", "created_at")
    readonly_fields = ("workflow", "number", "graph", "created_at")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("workflow", "created_at")
    exclude = ("signing_secret_encrypted", "token")


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    """List and delete only. A secret's value is set through the API (encrypted there); a
    form without the value would save an empty ciphertext that fails to decrypt later."""

    list_display = ("name", "owner", "updated_at")
    exclude = ("value_encrypted",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Secret | None = None) -> bool:
        return False
