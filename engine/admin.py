from django.contrib import admin

from engine.models import ItemRun, Run, StepRun


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
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
    readonly_fields = [f.name for f in Run._meta.fields]


@admin.register(ItemRun)
class ItemRunAdmin(admin.ModelAdmin):
    list_display = ("run", "key", "status", "duration", "failed_block")
    list_filter = ("status",)
    search_fields = ("key", "error")


@admin.register(StepRun)
class StepRunAdmin(admin.ModelAdmin):
    list_display = ("run", "item_key", "name", "status", "attempts", "duration")
    list_filter = ("status", "name")
