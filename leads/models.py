"""The workflow tables: the sample CRM table the lead template writes to, and the emails the
personalised-emails template writes.

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


class PersonalisedEmail(models.Model):
    """What the personalised-emails template writes: one email per campaign and recipient."""

    campaign = models.CharField(max_length=100)
    recipient_id = models.CharField(max_length=100)
    name = models.TextField()
    email = models.TextField()
    company = models.TextField(blank=True)
    subject = models.TextField()
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "personalised_emails"
        ordering = ["campaign", "recipient_id"]
        managed = False  # created per owner, not by migrations
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "recipient_id"], name="personalised_email_per_recipient"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.email}"


class ImageDescription(models.Model):
    """What the image-batch template writes: one description per batch and image."""

    batch = models.CharField(max_length=100)
    image_id = models.CharField(max_length=100)
    url = models.TextField()
    caption = models.TextField()
    tags = models.TextField(blank=True)  # JSON list, as the model answered it
    quality = models.CharField(max_length=20, blank=True)
    described_at = models.DateTimeField()

    class Meta:
        db_table = "image_descriptions"
        ordering = ["batch", "image_id"]
        managed = False  # created per owner, not by migrations
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "image_id"], name="image_description_per_image"
            )
        ]

    def __str__(self) -> str:
        return f"{self.image_id}: {self.caption}"


# Created in every owner's schema or file, in this order.
WORKFLOW_MODELS: list[type[models.Model]] = [EnrichedLead, PersonalisedEmail, ImageDescription]
