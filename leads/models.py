"""The workflow tables: the sample CRM table the lead template writes to.

Each owner gets their own copy (`leads/owner_data.py`: a schema per owner on PostgreSQL, a
file per owner on SQLite); the model is the shape those copies are created from, never a
table of its own.
"""

from django.db import models


class EnrichedLead(models.Model):
    lead_id = models.CharField(max_length=100, unique=True)
    name = models.TextField()
    company = models.TextField(blank=True)
    title = models.TextField(blank=True)
    email = models.TextField(blank=True)
    company_size = models.IntegerField(null=True, blank=True)
    budget_estimate = models.TextField(blank=True)
    urgency_level = models.CharField(max_length=20, blank=True)
    qualification_score = models.IntegerField(null=True, blank=True)
    linkedin_url = models.TextField(blank=True)
    enriched_at = models.DateTimeField()

    class Meta:
        db_table = "enriched_leads"
        ordering = ["-qualification_score", "lead_id"]
        managed = False  # created per owner, not by migrations

    def __str__(self) -> str:
        return f"{self.name} ({self.company})"


# Created in every owner's schema or file, in this order.
WORKFLOW_MODELS: list[type[models.Model]] = [EnrichedLead]
