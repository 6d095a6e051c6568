"""Thin DRF serializers: shapes of requests and responses, no logic."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from builder.models import Workflow
from builder.run_reads import COUNT_CAP
from engine import run_costs
from engine.core.limits import (
    MAX_BUDGET_USD,
    MAX_CONCURRENT,
    MAX_RUN_PRIORITY,
    MAX_RUN_WEIGHT,
    MAX_SAMPLE_ITEMS,
    MIN_RUN_WEIGHT,
)
from engine.core.off_peak import DEFER_OFF_PEAK
from engine.core.provider_state import paused
from engine.core.redaction import MIN_SECRET_LENGTH
from engine.core.text_controls import bidi_control_in
from engine.models import ItemRun, Run, StepRun


def shown_as_written(value: str) -> None:
    """A name shown in the editor, History and the admin: no bidi controls, which would make
    it read otherwise than it is (engine/core/text_controls.py)."""
    control = bidi_control_in(value)
    if control is not None:
        raise serializers.ValidationError(
            f"may not contain bidirectional control characters ({control}): they change how "
            "the name reads"
        )


class WorkflowWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, validators=[shown_as_written])
    description = serializers.CharField(required=False, allow_blank=True)
    graph = serializers.JSONField(required=False)
    base_version = serializers.IntegerField(required=False, allow_null=True)
    message = serializers.CharField(max_length=500, required=False, allow_blank=True)
    publish = serializers.BooleanField(required=False, default=False)
    # The workflow's dollar budget per run (null: none); see Workflow.budget_usd.
    budget_usd = serializers.FloatField(
        required=False, allow_null=True, min_value=0, max_value=MAX_BUDGET_USD
    )


class WorkflowSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()
    published_version = serializers.SerializerMethodField()
    draft_differs = serializers.SerializerMethodField()
    graph = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
    webhook_signed = serializers.SerializerMethodField()
    webhook_max_bytes = serializers.SerializerMethodField()
    request_max_bytes = serializers.SerializerMethodField()
    off_peak_hours = serializers.SerializerMethodField()

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "template_slug",
            "version",
            "published_version",
            "draft_differs",
            "graph",
            "webhook_url",
            "webhook_signed",
            "webhook_max_bytes",
            "request_max_bytes",
            "off_peak_hours",
            "budget_usd",
            "created_at",
            "updated_at",
        ]

    def get_version(self, obj: Workflow) -> int | None:
        return obj.current_version.number if obj.current_version else None

    def get_published_version(self, obj: Workflow) -> int | None:
        """The live version: what webhooks, the REST API and the CLI run."""
        return obj.published_version.number if obj.published_version else None

    def get_draft_differs(self, obj: Workflow) -> bool:
        """Whether the draft's graph is not the live one (a new save, or nothing live)."""
        draft, live = obj.current_version, obj.published_version
        if draft is None:
            return False
        return live is None or (draft.pk != live.pk and draft.graph != live.graph)

    def get_graph(self, obj: Workflow) -> Any:
        return obj.current_version.graph if obj.current_version else {"blocks": [], "edges": []}

    def get_webhook_signed(self, obj: Workflow) -> bool:
        """Whether posts must be signed (the secret itself is never returned)."""
        webhook = getattr(obj, "webhook", None)
        return bool(webhook and webhook.signing_secret_encrypted)

    def get_webhook_max_bytes(self, obj: Workflow) -> int:
        """The largest body the webhook takes (KLYNTOS_WEBHOOK_MAX_BYTES; 413 past it): the
        editor warns before a user posts more."""
        return int(settings.KLYNTOS_WEBHOOK_MAX_BYTES)

    def get_request_max_bytes(self, obj: Workflow) -> int:
        """The largest REST API request body (KLYNTOS_REQUEST_MAX_BYTES; 413 past it): the
        editor warns before its Run button posts an input that large."""
        return int(settings.KLYNTOS_REQUEST_MAX_BYTES)

    def get_off_peak_hours(self, obj: Workflow) -> str | None:
        """The window a run started with `defer: "off_peak"` waits for (KLYNTOS_OFF_PEAK_HOURS),
        or None when none is configured (such starts are refused): the editor offers the
        option only when there is one."""
        return str(settings.KLYNTOS_OFF_PEAK_HOURS).strip() or None

    def get_webhook_url(self, obj: Workflow) -> str | None:
        webhook = getattr(obj, "webhook", None)
        if webhook is None:
            return None
        request = self.context.get("request")
        path = reverse("webhook", args=[webhook.token])
        return request.build_absolute_uri(path) if request else path


class RunStartSerializer(serializers.Serializer):
    input = serializers.JSONField(required=False, default=dict)
    # "published" (production) or "draft": a test run of the saved draft, marked as such.
    version = serializers.ChoiceField(
        choices=["published", "draft"], required=False, default="published"
    )
    # Who started it, as History shows it: the editor says so; anything else is "api".
    trigger = serializers.ChoiceField(choices=["api", "editor"], required=False, default="api")
    sequential = serializers.BooleanField(required=False, default=False)
    max_concurrent = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_CONCURRENT, allow_null=True
    )
    # An estimate: each top-level loop runs its first N items (the summary extrapolates).
    sample_items = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_SAMPLE_ITEMS, allow_null=True
    )
    # This run's dollar budget, over the workflow's (Workflow.budget_usd).
    budget_usd = serializers.FloatField(
        required=False, min_value=0, max_value=MAX_BUDGET_USD, allow_null=True
    )
    # Its share of the providers it shares with other runs: weight (default 1) and
    # priority (higher first, default 0), engine/core/providers.py.
    weight = serializers.FloatField(
        required=False, min_value=MIN_RUN_WEIGHT, max_value=MAX_RUN_WEIGHT, allow_null=True
    )
    priority = serializers.IntegerField(
        required=False, min_value=-MAX_RUN_PRIORITY, max_value=MAX_RUN_PRIORITY, allow_null=True
    )
    # "off_peak": outside KLYNTOS_OFF_PEAK_HOURS the run waits `deferred` until they begin.
    defer = serializers.ChoiceField(choices=[DEFER_OFF_PEAK], required=False, allow_null=True)


class TokenCountsSerializer(serializers.Serializer):
    prompt = serializers.IntegerField()
    completion = serializers.IntegerField()
    total = serializers.IntegerField()


class ModelPriceSerializer(serializers.Serializer):
    input = serializers.FloatField(help_text="USD per 1M prompt tokens")
    output = serializers.FloatField(help_text="USD per 1M completion tokens")


class ModelUsageSerializer(serializers.Serializer):
    model = serializers.CharField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    calls = serializers.IntegerField()
    price = ModelPriceSerializer(allow_null=True)
    cost_usd = serializers.FloatField(allow_null=True)


class CacheSavingsSerializer(serializers.Serializer):
    """What the result cache did in a run (blocks with `cache`)."""

    hits = serializers.IntegerField(help_text="steps answered from the cache, no call made")
    misses = serializers.IntegerField(help_text="steps that called, then kept their output")
    calls_saved = serializers.IntegerField()
    llm_calls_saved = serializers.IntegerField()
    tokens_saved = serializers.IntegerField()
    saved_usd = serializers.FloatField(
        allow_null=True, help_text="what the hits' original calls cost, at today's prices"
    )


class LoopEstimateSerializer(serializers.Serializer):
    loop = serializers.CharField()
    sampled = serializers.IntegerField()
    items = serializers.IntegerField()
    per_item_usd = serializers.FloatField()
    estimated_usd = serializers.FloatField()
    error_usd = serializers.FloatField()


class EstimateSerializer(serializers.Serializer):
    """A sample run's estimate of the whole batch (runs started with `sample_items`)."""

    sample_items = serializers.IntegerField()
    fixed_usd = serializers.FloatField()
    estimated_usd = serializers.FloatField()
    error_usd = serializers.FloatField(help_text="±, about 95 % (1.96 standard errors)")
    loops = LoopEstimateSerializer(many=True)


class RunCostSummarySerializer(serializers.Serializer):
    """The schema of a run's `summary` (engine/run_costs.py computes it)."""

    wall_seconds = serializers.FloatField(allow_null=True)
    sequential_seconds = serializers.FloatField()
    waited_seconds = serializers.FloatField()  # waits for providers, left out of sequential
    items_measured = serializers.IntegerField()
    speedup = serializers.FloatField(allow_null=True)
    tokens = TokenCountsSerializer()
    llm_calls = serializers.IntegerField()
    cost_usd = serializers.FloatField(allow_null=True)
    unpriced_models = serializers.ListField(child=serializers.CharField())
    models = ModelUsageSerializer(many=True)
    cache = CacheSavingsSerializer()
    estimate = EstimateSerializer(required=False)


class PausedProviderSerializer(serializers.Serializer):
    """A provider whose breaker pauses the run (engine/core/providers.py)."""

    provider = serializers.CharField()
    state = serializers.ChoiceField(choices=["open", "half_open"])
    mode = serializers.ChoiceField(choices=["auto", "manual"])
    reason = serializers.CharField()
    message = serializers.CharField()
    since = serializers.FloatField(help_text="when it opened, seconds since the epoch")


class RunSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    # The providers whose breaker pauses the run (a manual one: until Resume).
    paused = serializers.SerializerMethodField()
    workflow_version = serializers.IntegerField(source="version.number", read_only=True)
    duration = serializers.SerializerMethodField()
    draft = serializers.SerializerMethodField()
    # Its share of the providers it shares with other runs (weight 1, priority 0 unless set).
    weight = serializers.SerializerMethodField()
    priority = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    # The link both ways between a run and its retries (POST /api/runs/<id>/retry-failed/).
    retry_of = serializers.UUIDField(source="retry_of_id", read_only=True, allow_null=True)
    retries = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "workflow",
            "workflow_version",
            "status",
            "trigger",
            "draft",
            "weight",
            "priority",
            "retry_of",
            "retries",
            "resumes",
            "progress",
            "error",
            "outputs",
            "created_at",
            "started_at",
            "finished_at",
            "deferred_until",
            "duration",
            "summary",
            "last_seq",
            "providers",
            "paused",
        ]

    def get_progress(self, obj: Run) -> dict[str, int]:
        return obj.progress

    @extend_schema_field(PausedProviderSerializer(many=True))
    def get_paused(self, obj: Run) -> list[dict[str, Any]]:
        return [] if obj.is_final else paused(obj.providers)

    def get_retries(self, obj: Run) -> list[str]:
        """The runs that retried this one's failures, oldest first."""
        retries = sorted(obj.retries.all(), key=lambda r: r.created_at)  # prefetched in lists
        return [str(r.pk) for r in retries]

    def get_draft(self, obj: Run) -> bool:
        """A test run of a draft version (started from the editor), not production."""
        return bool((obj.options or {}).get("draft"))

    def get_weight(self, obj: Run) -> float:
        return float((obj.options or {}).get("weight") or 1.0)

    def get_priority(self, obj: Run) -> int:
        return int((obj.options or {}).get("priority") or 0)

    def get_duration(self, obj: Run) -> float | None:
        if obj.started_at and obj.finished_at:
            return (obj.finished_at - obj.started_at).total_seconds()
        return None

    @extend_schema_field(RunCostSummarySerializer)
    def get_summary(self, obj: Run) -> dict[str, Any]:
        """Wall and sequential time, speedup, tokens and dollars; a list passes its page's
        summaries in the context (run_costs.summaries: a few queries for the whole page)."""
        known = self.context.get("summaries") or {}
        return known[obj.pk] if obj.pk in known else run_costs.summary(obj)


class RunSummarySerializer(RunSerializer):
    class Meta(RunSerializer.Meta):
        fields = [f for f in RunSerializer.Meta.fields if f != "outputs"]


class StepRunSerializer(serializers.ModelSerializer):
    tokens = serializers.SerializerMethodField()
    cost_usd = serializers.SerializerMethodField()

    class Meta:
        model = StepRun
        fields = [
            "block_id",
            "name",
            "status",
            "output",
            "error",
            "attempts",
            "usage",
            "tokens",
            "cost_usd",
            "started_at",
            "finished_at",
            "duration",
        ]

    def get_tokens(self, obj: StepRun) -> int:
        return int(run_costs.usage_cost([obj.usage])["tokens"])

    def get_cost_usd(self, obj: StepRun) -> float | None:
        """USD of the step's LLM calls at the current prices; null when its model has none."""
        return run_costs.usage_cost([obj.usage])["cost_usd"]


class ItemRunSerializer(serializers.ModelSerializer):
    steps = serializers.SerializerMethodField()
    tokens = serializers.SerializerMethodField()
    cost_usd = serializers.SerializerMethodField()

    class Meta:
        model = ItemRun
        fields = [
            "key",
            "loop_block",
            "parent_key",
            "index",
            "status",
            "data",
            "error",
            "failed_block",
            "worker",
            "started_at",
            "finished_at",
            "duration",
            "tokens",
            "cost_usd",
            "steps",
        ]

    def _cost(self, obj: ItemRun) -> dict[str, Any]:
        """The item's own steps' tokens and dollars, from the view's `costs` context
        (run_costs.item_costs: one query for a page)."""
        found = self.context.get("costs", {}).get(obj.key)
        return found if found is not None else {"tokens": 0, "cost_usd": 0.0}

    def get_tokens(self, obj: ItemRun) -> int:
        return int(self._cost(obj)["tokens"])

    def get_cost_usd(self, obj: ItemRun) -> float | None:
        return self._cost(obj)["cost_usd"]

    def get_steps(self, obj: ItemRun) -> list[dict[str, Any]]:
        steps = self.context.get("steps", {}).get(obj.key, [])
        return StepRunSerializer(steps, many=True).data  # type: ignore[return-value]


class SecretWriteSerializer(serializers.Serializer):
    # \Z, not $: $ also matches before a trailing newline.
    name = serializers.RegexField(r"^[A-Za-z_][A-Za-z0-9_]*\Z", max_length=100)
    # Shorter values are not masked in outputs, events and logs (they would mask ordinary
    # text everywhere): refused rather than stored as a secret that shows.
    value = serializers.CharField(
        write_only=True,
        max_length=10000,
        min_length=MIN_SECRET_LENGTH,
        trim_whitespace=False,
        error_messages={
            "min_length": f"a secret is at least {MIN_SECRET_LENGTH} characters: shorter "
            "values could not be masked in outputs and logs"
        },
    )


class ValidateRequestSerializer(serializers.Serializer):
    graph = serializers.JSONField(
        required=False, help_text="the graph to check; the saved one when omitted"
    )
    blocks = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=10000,
        help_text="block ids whose in-scope references to list; all blocks when omitted",
    )


class SigningSecretSerializer(serializers.Serializer):
    signing_secret = serializers.CharField(help_text="shown once; only an encrypted copy is kept")


class TemplateInstantiateSerializer(serializers.Serializer):
    # Blank or absent: the template's own name. Workflow.name is varchar(200).
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=200, validators=[shown_as_written]
    )


# The statuses the run store gives an ItemRun.
ITEM_STATUSES = ("running", "succeeded", "failed", "cancelled", "not_started")


class ItemFilterSerializer(serializers.Serializer):
    """Query parameters of a run's item list (docs/run-protocol.md). CharField refuses NUL
    characters, which PostgreSQL cannot compare against (a 500 otherwise)."""

    status = serializers.ChoiceField(choices=ITEM_STATUSES, required=False)
    key = serializers.CharField(required=False, max_length=500, trim_whitespace=False)
    q = serializers.CharField(required=False, max_length=200, trim_whitespace=False)
    loop = serializers.CharField(required=False, max_length=100)
    cursor = serializers.CharField(required=False, max_length=2000)
    # A page at a position (the table jumping far down), bounded like the count: past it the
    # list is not counted, and OFFSET costs grow with it.
    offset = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=COUNT_CAP,
        help_text=f"rows to skip (0..{COUNT_CAP}); not with `cursor`",
        error_messages={
            "min_value": "offset: at least 0",
            "max_value": f"offset: at most {COUNT_CAP} (the list is counted that far)",
            "invalid": "offset: a whole number",
        },
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200)
    # `from` is a Python keyword: the view maps the query parameters to these names.
    window_from = serializers.FloatField(required=False, min_value=0, max_value=1e9)
    window_to = serializers.FloatField(required=False, min_value=0, max_value=1e9)
    min_duration = serializers.FloatField(required=False, min_value=0, max_value=1e9)
    max_duration = serializers.FloatField(required=False, min_value=0, max_value=1e9)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "offset" in attrs and "cursor" in attrs:
            raise serializers.ValidationError({"offset": "offset: give offset or cursor, not both"})
        return attrs


class ItemListRowSerializer(ItemRunSerializer):
    """A row of a page of items: the item without its steps (the detail has them)."""

    class Meta(ItemRunSerializer.Meta):
        fields = [f for f in ItemRunSerializer.Meta.fields if f != "steps"]


class TimelineQuerySerializer(serializers.Serializer):
    window_from = serializers.FloatField(required=False, min_value=0, max_value=1e9)
    window_to = serializers.FloatField(required=False, min_value=0, max_value=1e9)
    buckets = serializers.IntegerField(required=False, min_value=1, max_value=500)
    loop = serializers.CharField(required=False, max_length=100)
