"""Authoring: workflows, their immutable versions, webhooks and the owner's secrets."""

from __future__ import annotations

import secrets as token_source

from django.conf import settings
from django.db import models

from builder import crypto


def new_token() -> str:
    return token_source.token_urlsafe(32)


class Workflow(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    template_slug = models.SlugField(max_length=100, blank=True)
    # The draft: the newest saved version, what the editor shows and test runs run.
    current_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What production runs (webhooks, the REST API, the CLI): set only by publishing a valid
    # version, so saving a draft never changes it.
    published_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The published version's schedule trigger (empty cron: none), copied when it is
    # published so the scheduler finds due workflows with one indexed query.
    schedule_cron = models.CharField(max_length=200, blank=True)
    schedule_timezone = models.CharField(max_length=64, blank=True)
    schedule_next_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The run-start rate limit's token bucket (KLYNTOS_RUNS_PER_MINUTE): tokens left when
    # last counted, and when. Null: a full bucket. Written with the row locked.
    # The dollar budget of each of its runs (a run's own `budget_usd` option wins; neither:
    # KLYNTOS_RUN_BUDGET_USD). Reached, a run starts no more loop items (engine/core/loop.py).
    budget_usd = models.FloatField(null=True, blank=True)
    run_tokens = models.FloatField(null=True, blank=True)
    run_tokens_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name


class OwnerRunBucket(models.Model):
    """An owner's run-start token bucket across all their workflows
    (KLYNTOS_OWNER_RUNS_PER_MINUTE): tokens left when last counted, and when. Each workflow
    has its own bucket too; this one stops a user whose many workflows (or copies of one)
    would each start their own allowance. Written with the row locked, after the
    workflow's."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    tokens = models.FloatField(null=True, blank=True)
    tokens_at = models.DateTimeField(null=True, blank=True)


class WorkflowVersion(models.Model):
    """A saved graph. Never changes once written: a run points at the version it ran."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    # The validation result, worked out once when the version is saved (the form of
    # engine.core.validation.ValidationResult.stored: secret references are resolved when
    # read). Null for versions saved before it existed: filled in on first use.
    validation = models.JSONField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When this version was last made the live one (null: never). Bookkeeping about the
    # version, like `validation`, written with update(): the graph itself never changes.
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="unique_version_number")
        ]

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("workflow versions are immutable; save a new version instead")
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}"


class Webhook(models.Model):
    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, related_name="webhook")
    token = models.CharField(max_length=64, unique=True, default=new_token)
    signing_secret_encrypted = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def signing_secret(self) -> str:
        return (
            crypto.decrypt(self.signing_secret_encrypted) if self.signing_secret_encrypted else ""
        )

    def set_signing_secret(self, value: str) -> None:
        self.signing_secret_encrypted = crypto.encrypt(value) if value else ""


class WebhookDelivery(models.Model):
    """A signed delivery seen within its signature's tolerance window: a verbatim replay
    (same signature) finds this row and gets the first delivery's run, not a new one."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    signature = models.CharField(max_length=64)  # HMAC-SHA256 hex of "<t>.<body>"
    run = models.ForeignKey("engine.Run", null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField(db_index=True)  # signature timestamp + tolerance

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "signature"], name="unique_delivery_signature"
            )
        ]


class Secret(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="secrets"
    )
    name = models.CharField(max_length=100)
    value_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_secret_name")]

    @property
    def value(self) -> str:
        return crypto.decrypt(self.value_encrypted)

    def set_value(self, value: str) -> None:
        self.value_encrypted = crypto.encrypt(value)

    def __str__(self) -> str:
        return self.name
