from django.contrib import admin

from leads.models import EnrichedLead


@admin.register(EnrichedLead)
class EnrichedLeadAdmin(admin.ModelAdmin):
    list_display = (
        "lead_id",
        "name",
        "company",
        "title",
        "company_size",
        "urgency_level",
        "qualification_score",
        "enriched_at",
    )
    search_fields = ("lead_id", "name", "company", "email", "title")
    list_filter = ("urgency_level", "qualification_score")
    ordering = ("-qualification_score", "lead_id")
    readonly_fields = [f.name for f in EnrichedLead._meta.fields]
