"""Writes, as keyword-only functions named <entity>_<verb>."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import secrets as token_source
import time
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from builder.models import (
    OwnerRunBucket,
    Secret,
    Webhook,
    WebhookDelivery,
    Workflow,
    WorkflowVersion,
)
from builder.schedules import sync_schedule
from builder.secret_values import secret_value_warnings
from builder.selectors import env_for_owner, env_names_for
from engine import leases
from engine.blocks import REGISTRY
from engine.blocks.webhook import body_errors
from engine.cancel_in_database import cancel_in_database
from engine.config import graph_limits, off_peak_window
from engine.core.graph import Graph, GraphFormatError, parse_graph
from engine.core.limits import GraphTooLarge, check_graph_size
from engine.core.off_peak import DEFER_OFF_PEAK
from engine.core.provider_state import gave_up as gave_up_providers
from engine.core.provider_state import paused as paused_providers
from engine.core.validation import (
    ValidationIssue,
    ValidationResult,
    stored_errors,
    stored_warnings,
    validate,
)
from engine.models import Run, RunStatus
from engine.store import publish_run_ended, publish_workflow_changed, publish_workflow_event
from engine.submit import submit_run


class GraphInvalid(Exception):
    def __init__(self, errors: list[ValidationIssue]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class GraphOverLimit(GraphInvalid):
    """The graph is past a size limit (a setting); refused before any other work."""

    def __init__(self, exc: GraphTooLarge) -> None:
        self.setting = exc.setting
        self.message = str(exc)
        super().__init__([ValidationIssue(None, None, "graph", self.message)])


class StaleVersion(Exception):
    def __init__(self, current: int | None) -> None:
        self.current = current
        super().__init__(
            f"the workflow was saved since (current version {current}); reload and retry"
        )


class NotPublished(GraphInvalid):
    """A production run (webhook, REST, CLI) of a workflow with no published version."""

    def __init__(self, draft: int | None) -> None:
        what = f"v{draft} is a draft" if draft else "there is no saved version"
        super().__init__(
            [
                ValidationIssue(
                    None,
                    None,
                    "graph",
                    f"the workflow has no published version ({what}): publish it in the"
                    " editor or with POST /api/workflows/<id>/publish/",
                )
            ]
        )


class IdempotencyConflict(Exception):
    pass


class NothingToRetry(Exception):
    """Retry-failed of a run that has not ended, or that has nothing failed (409)."""


class NotPaused(Exception):
    """Resume of a provider the run does not wait for (409)."""


class CannotDefer(Exception):
    """A start asking to be deferred when there is nowhere to defer it to (400)."""


class RateLimited(Exception):
    """The workflow started KLYNTOS_RUNS_PER_MINUTE runs in the last minute, or its owner
    KLYNTOS_OWNER_RUNS_PER_MINUTE across their workflows (429)."""

    def __init__(self, retry_after: int, *, owner: bool = False) -> None:
        self.retry_after = retry_after
        who, rate = (
            ("your workflows start", settings.KLYNTOS_OWNER_RUNS_PER_MINUTE)
            if owner
            else ("this workflow starts", settings.KLYNTOS_RUNS_PER_MINUTE)
        )
        super().__init__(f"{who} at most {rate} runs a minute; retry in {retry_after} s")


class BodyMismatch(Exception):
    """The run input fails the webhook trigger's body schema (422)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the body does not match the webhook's schema")


def _require_body_matches(graph: Any, body: Any) -> None:
    trigger = next((b for b in graph.get("blocks", []) if b.get("type") == "webhook"), None)
    problems = body_errors((trigger or {}).get("config", {}).get("body_schema"), body)
    if problems:
        raise BodyMismatch(problems)


def _require_within_limits(graph: Any) -> None:
    """First thing on any graph a user sends: counting its lists is all a graph past the
    limits costs."""
    try:
        check_graph_size(graph, graph_limits())
    except GraphTooLarge as exc:
        raise GraphOverLimit(exc) from None


def graph_validate(*, owner: Any, graph: Any) -> ValidationResult:
    """Validate a graph (GraphOverLimit past the size limits, before anything else)."""
    _require_within_limits(graph)
    try:
        parsed = parse_graph(graph)
    except GraphFormatError as exc:
        return ValidationResult.failed(ValidationIssue(None, None, "graph", str(exc)))
    return _validated(owner, parsed)


def _validated(owner: Any, parsed: Graph) -> ValidationResult:
    """The graph's validation for its owner, with a warning where a secret's value was typed
    in place of its reference (builder/secret_values.py)."""
    result = validate(parsed, REGISTRY, env_names_for(owner.pk), graph_limits())
    for warning in secret_value_warnings(parsed, env_for_owner(owner.pk)):
        if warning not in result.warnings:
            result.warnings.append(warning)
    return result


def version_errors(version: WorkflowVersion, owner: Any) -> list[ValidationIssue]:
    """A saved version's validation errors for the owner's secrets of now, from the result
    stored with it: reading a workflow never validates it again. A version saved before
    results were stored is validated once and the result kept."""
    env_names = env_names_for(owner.pk)
    errors = stored_errors(version.validation, env_names)
    if errors is None:
        result = graph_validate(owner=owner, graph=version.graph)
        version.validation = result.stored()
        # Not a change to the version (its graph is immutable): a cache of what it means.
        WorkflowVersion.objects.filter(pk=version.pk).update(validation=version.validation)
        errors = result.errors
    return errors


def version_warnings(version: WorkflowVersion) -> list[ValidationIssue]:
    """A saved version's warnings (advice that blocks neither a save nor a run), as stored
    with it; `version_errors` first brings an older stored result up to date."""
    return stored_warnings(version.validation)


def _require_valid(version: WorkflowVersion, owner: Any) -> None:
    errors = version_errors(version, owner)
    if errors:
        raise GraphInvalid(errors)


def _checked_graph(owner: Any, graph: Any) -> dict[str, Any]:
    """The stored validation of a graph about to be saved; refuses what is not a graph."""
    _require_within_limits(graph)
    try:
        parsed = parse_graph(graph)
    except GraphFormatError as exc:
        raise GraphInvalid([ValidationIssue(None, None, "graph", str(exc))]) from None
    return _validated(owner, parsed).stored()


@transaction.atomic
def workflow_create(
    *,
    owner: Any,
    name: str,
    graph: Any,
    description: str = "",
    template_slug: str = "",
    message: str = "",
) -> Workflow:
    """Saves drafts too: a graph only has to be valid to run (the response reports errors).
    A new workflow's first version is published when it is valid, so a template (or a
    workflow posted whole through the API) answers its webhook at once; later saves are
    drafts until published."""
    validation = _checked_graph(owner, graph)
    workflow = Workflow.objects.create(
        owner=owner, name=name, description=description, template_slug=template_slug
    )
    version = WorkflowVersion.objects.create(
        workflow=workflow,
        number=1,
        graph=graph,
        validation=validation,
        message=message,
        created_by=owner,
    )
    workflow.current_version = version
    fields = ["current_version"]
    if not stored_errors(validation, env_names_for(owner.pk)):
        fields += _mark_published(workflow, version)
    workflow.save(update_fields=fields)
    Webhook.objects.create(workflow=workflow)
    _changed_on_commit(workflow.pk)
    return workflow


def _mark_published(workflow: Workflow, version: WorkflowVersion) -> list[str]:
    """Makes `version` the live one, its schedule trigger (if any) the workflow's schedule;
    returns the workflow fields the caller saves."""
    workflow.published_version = version
    version.published_at = timezone.now()
    WorkflowVersion.objects.filter(pk=version.pk).update(published_at=version.published_at)
    return ["published_version", *sync_schedule(workflow, version.graph, version.published_at)]


@transaction.atomic
def workflow_publish(
    *, workflow: Workflow, number: int | None = None, message: str = ""
) -> Workflow:
    """Makes a version (the draft when `number` is None) what production runs; refused
    (GraphInvalid, listing the problems) when that version is not valid. Publishing the
    live version again only refreshes its time."""
    locked = Workflow.objects.select_for_update(of=("self",)).get(pk=workflow.pk)
    if number is None:
        version = locked.current_version
    else:
        version = locked.versions.filter(number=number).first()
    if version is None:
        raise Http404("no such version")
    _require_valid(version, locked.owner)
    if message and not version.message:
        version.message = message[:500]
        WorkflowVersion.objects.filter(pk=version.pk).update(message=version.message)
    fields = _mark_published(locked, version)
    locked.save(update_fields=[*fields, "updated_at"])
    _changed_on_commit(locked.pk)
    return _reloaded(locked)


def _changed_on_commit(workflow_id: Any) -> None:
    """Tells the workflow's open editors (builder/workflow_socket.py) of a new version or a
    publish once it is committed: only the id, they read the numbers themselves."""
    transaction.on_commit(lambda: async_to_sync(publish_workflow_changed)(workflow_id))


def _reloaded(workflow: Workflow) -> Workflow:
    return Workflow.objects.select_related("current_version", "published_version").get(
        pk=workflow.pk
    )


@transaction.atomic
def workflow_save(
    *,
    workflow: Workflow,
    graph: Any,
    base_version: int | None,
    name: str | None = None,
    message: str = "",
    author: Any = None,
    publish: bool = False,
) -> Workflow:
    """A new immutable draft version; refused (409) when `base_version` is not the current
    one. Production keeps running the published version unless `publish` is set (then the
    saved version must be valid, or nothing is saved)."""
    locked = (
        Workflow.objects.select_for_update(of=("self",))
        .select_related("current_version")
        .get(pk=workflow.pk)
    )
    current = locked.current_version.number if locked.current_version else None
    if base_version != current:
        raise StaleVersion(current)
    _require_within_limits(graph)
    if locked.current_version is not None and locked.current_version.graph == graph:
        # Nothing changed (a reflex Ctrl+S): no new version to wade through in the history.
        if name and name != locked.name:
            locked.name = name
            locked.save(update_fields=["name", "updated_at"])
        if publish:
            return workflow_publish(workflow=locked, message=message)
        return _reloaded(locked)
    validation = _checked_graph(locked.owner, graph)
    version = WorkflowVersion.objects.create(
        workflow=locked,
        number=(current or 0) + 1,
        graph=graph,
        validation=validation,
        message=message[:500],
        created_by=author,
    )
    locked.current_version = version
    if name:
        locked.name = name
    fields = ["current_version", "name", "updated_at"]
    if publish:
        _require_valid(version, locked.owner)  # raises: the transaction saves nothing
        fields += _mark_published(locked, version)
    locked.save(update_fields=fields)
    _changed_on_commit(locked.pk)
    return _reloaded(locked)


def version_restore(*, workflow: Workflow, number: int, author: Any = None) -> Workflow:
    """Version `number`'s graph saved as the new draft (the live version is untouched)."""
    version = workflow.versions.filter(number=number).first()
    if version is None:
        raise Http404("no such version")
    current = workflow.current_version.number if workflow.current_version else None
    return workflow_save(
        workflow=workflow,
        graph=version.graph,
        base_version=current,
        message=f"restored from v{number}",
        author=author,
    )


def workflow_rename(*, workflow: Workflow, name: str) -> Workflow:
    workflow.name = name
    workflow.save(update_fields=["name", "updated_at"])
    return workflow


@transaction.atomic
def workflow_delete(*, workflow: Workflow) -> None:
    # The row lock orders the delete after any run start in progress (which holds it too):
    # a run inserted while the cascade runs would otherwise fail its foreign keys (a 500).
    locked = Workflow.objects.select_for_update(of=("self",)).filter(pk=workflow.pk).first()
    if locked is not None:
        locked.delete()


def webhook_rotate_secret(*, webhook: Webhook) -> str:
    """A new signing secret, returned once; only its encrypted form is kept."""
    value = "whsec_" + token_source.token_urlsafe(32)
    webhook.set_signing_secret(value)
    webhook.save(update_fields=["signing_secret_encrypted"])
    return value


def secret_delete(*, secret: Secret) -> None:
    secret.delete()


def secret_set(*, owner: Any, name: str, value: str) -> Secret:
    secret = Secret.objects.filter(owner=owner, name=name).first() or Secret(owner=owner, name=name)
    secret.set_value(value)
    secret.save()
    return secret


def input_fingerprint(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def run_budget(workflow: Workflow, options: dict[str, Any] | None) -> float | None:
    """The run's dollar budget: its own `budget_usd` option, else the workflow's, else
    KLYNTOS_RUN_BUDGET_USD; None when none is set. Kept in the run's options."""
    own = (options or {}).get("budget_usd")
    if own is not None:
        return float(own)
    if workflow.budget_usd is not None:
        return float(workflow.budget_usd)
    default = settings.KLYNTOS_RUN_BUDGET_USD
    return float(default) if default is not None else None


def workflow_set_budget(*, workflow: Workflow, budget_usd: float | None) -> Workflow:
    """The workflow's dollar budget per run (None: none)."""
    Workflow.objects.filter(pk=workflow.pk).update(budget_usd=budget_usd)
    workflow.refresh_from_db()
    return workflow


def run_create(
    *,
    workflow: Workflow,
    input: Any,
    trigger: str = "api",
    options: dict[str, Any] | None = None,
    idempotency_key: str = "",
    fingerprint: str = "",
    call_depth: int = 0,
    delivery: tuple[Webhook, str, datetime.datetime] | None = None,
    draft: bool = False,
    now: datetime.datetime | None = None,
    announce: bool = True,
    lease_owner: str = "",
) -> tuple[Run, bool]:
    """A queued run of the workflow's published version (its draft for a test run from the
    editor: `draft`, marked so in the run's options); (run, created). With an
    Idempotency-Key the same key and body give the same run, a different body conflicts;
    a signed `delivery` (webhook, signature, window end) seen before gives its first run.
    Refused with RateLimited past KLYNTOS_RUNS_PER_MINUTE for the workflow. With the option
    `defer: "off_peak"` outside the off-peak window, the run is `deferred` until the window
    opens (`deferred_until`; `now` is the clock, for tests); CannotDefer without a window.
    Not `announce`: the caller tells open editors (`announce_run`) once the run is under way.
    With `lease_owner` a run that starts now is created claimed by it (engine/leases.py): its
    creator executes it (the CLI), with no claim of its own to make."""
    version = workflow.current_version if draft else workflow.published_version
    if version is None:
        if workflow.current_version is None:
            raise GraphInvalid(
                [ValidationIssue(None, None, "graph", "the workflow has no saved version")]
            )
        # Never published: when its draft is not valid, that is the reason to give.
        _require_valid(workflow.current_version, workflow.owner)
        raise NotPublished(workflow.current_version.number)
    _require_valid(version, workflow.owner)
    _require_body_matches(version.graph, input)
    fingerprint = fingerprint or input_fingerprint(input)
    if idempotency_key:
        existing = Run.objects.filter(workflow=workflow, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replayed(existing, fingerprint), False
    if call_depth:
        options = {**(options or {}), "call_depth": call_depth}
    if draft:
        options = {**(options or {}), "draft": True}
    budget = run_budget(workflow, options)
    if budget is not None:
        options = {**(options or {}), "budget_usd": budget}
    deferred_until = _deferred_until((options or {}).get("defer"), now or timezone.now())
    try:
        with transaction.atomic():
            # Run starts of one workflow queue on its row: the rate count is exact, a
            # replayed delivery sees the first one, and a delete waits (workflow_delete).
            locked = _lock_workflow(workflow.pk)
            if delivery is not None:
                replayed = _delivery_seen(*delivery)
                if replayed is not None:
                    return replayed, False
            _take_run_token(locked)
            run = Run.objects.create(
                owner=workflow.owner,
                workflow=workflow,
                version=version,
                input=input,
                trigger=trigger,
                options=options or {},
                idempotency_key=idempotency_key,
                input_hash=fingerprint,
                deferred_until=deferred_until,
                **_start_state(deferred_until, lease_owner),
            )
            if delivery is not None:
                WebhookDelivery.objects.filter(webhook=delivery[0], signature=delivery[1]).update(
                    run=run
                )
    except IntegrityError:  # a concurrent request with the same key won the race
        if not idempotency_key:
            raise
        existing = Run.objects.get(workflow=workflow, idempotency_key=idempotency_key)
        return _replayed(existing, fingerprint), False
    # Whoever started it (webhook, api, cli, retry), an open editor hears of it.
    if announce:
        transaction.on_commit(lambda: _announce(workflow.pk, run.pk))
    return run, True


def _start_state(deferred_until: Any, lease_owner: str) -> dict[str, Any]:
    if deferred_until:
        return {"status": RunStatus.DEFERRED}
    if lease_owner:  # what leases.claim would write
        return {
            "status": RunStatus.RUNNING,
            "lease_owner": lease_owner,
            "lease_expires": leases.expiry(),
        }
    return {"status": RunStatus.QUEUED}


def _deferred_until(defer: Any, now: datetime.datetime) -> datetime.datetime | None:
    """When a run started at `now` with the option `defer` starts: None for now."""
    if not defer:
        return None
    if defer != DEFER_OFF_PEAK:
        raise CannotDefer(f"defer must be {DEFER_OFF_PEAK!r}, got {defer!r}")
    window = off_peak_window()
    if window is None:
        raise CannotDefer(
            "no off-peak window is configured (KLYNTOS_OFF_PEAK_HOURS): nothing to defer to"
        )
    until = window.next_start(now)
    return until if until > now else None


def run_start_deferred(*, now: datetime.datetime | None = None, limit: int = 100) -> list[Any]:
    """Queue and hand to the executor every deferred run whose time has come (the
    scheduler's look, in the web process or `manage.py scheduler`); their ids, oldest
    first. A run cancelled meanwhile is no longer deferred: it stays cancelled."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Run.objects.select_for_update(skip_locked=True)
            .filter(status=RunStatus.DEFERRED, deferred_until__lte=now)
            .order_by("deferred_until", "created_at")
            .values_list("pk", flat=True)[:limit]
        )
        if due:
            Run.objects.filter(pk__in=due, status=RunStatus.DEFERRED).update(
                status=RunStatus.QUEUED
            )
            for run_id in due:
                submit_run(run_id)
    return due


def _lock_workflow(workflow_id: int) -> Workflow:
    locked = Workflow.objects.select_for_update(of=("self",)).filter(pk=workflow_id).first()
    if locked is None:  # deleted while this request was on its way
        raise Http404("no such workflow")
    return locked


def _take_run_token(workflow: Workflow) -> None:
    """One token of the workflow's bucket (KLYNTOS_RUNS_PER_MINUTE) and one of its owner's
    (KLYNTOS_OWNER_RUNS_PER_MINUTE), both refilled continuously; the caller holds the
    workflow's row lock and its transaction. 0 turns a limit off."""
    now = timezone.now()
    rate = settings.KLYNTOS_RUNS_PER_MINUTE
    if rate > 0:
        left = _tokens_left(rate, workflow.run_tokens, workflow.run_tokens_at, now)
        # update(), not save(): the workflow's updated_at is about edits, not runs.
        Workflow.objects.filter(pk=workflow.pk).update(run_tokens=left, run_tokens_at=now)
    rate = settings.KLYNTOS_OWNER_RUNS_PER_MINUTE
    if rate > 0:
        # Made first, outside the lock (two first starts at once would collide on insert).
        OwnerRunBucket.objects.get_or_create(owner_id=workflow.owner_id)
        bucket = OwnerRunBucket.objects.select_for_update().get(owner_id=workflow.owner_id)
        left = _tokens_left(rate, bucket.tokens, bucket.tokens_at, now, owner=True)
        OwnerRunBucket.objects.filter(pk=bucket.pk).update(tokens=left, tokens_at=now)


def _tokens_left(
    rate: int,
    tokens: float | None,
    at: datetime.datetime | None,
    now: datetime.datetime,
    *,
    owner: bool = False,
) -> float:
    """What a bucket holds after one token is taken now, or RateLimited (null: full)."""
    held = float(rate) if tokens is None else tokens
    if at is not None:
        held = min(float(rate), held + max(0.0, (now - at).total_seconds()) * rate / 60)
    if held < 1:
        raise RateLimited(max(1, math.ceil((1 - held) * 60 / rate)), owner=owner)
    return held - 1


def _delivery_seen(webhook: Webhook, signature: str, expires_at: datetime.datetime) -> Run | None:
    """The run of an earlier delivery with this signature, or None after recording this one.

    Rows past their window are pruned here: a replay that old fails the timestamp check.
    """
    WebhookDelivery.objects.filter(webhook=webhook, expires_at__lt=timezone.now()).delete()
    earlier = (
        WebhookDelivery.objects.filter(webhook=webhook, signature=signature)
        .select_related("run")
        .first()
    )
    if earlier is None:
        WebhookDelivery.objects.create(webhook=webhook, signature=signature, expires_at=expires_at)
        return None
    if earlier.run is None:  # the first delivery's run was deleted since
        raise IdempotencyConflict("this signed delivery was already received")
    return earlier.run


def _announce(workflow_id: Any, run_id: Any) -> None:
    async_to_sync(publish_workflow_event)(workflow_id, "run.started", run_id)


async def announce_run(run: Run) -> None:
    """Open editors hear of a run created with `announce=False` (from async code)."""
    await publish_workflow_event(run.workflow_id, "run.started", run.pk)


def _replayed(existing: Run, fingerprint: str) -> Run:
    """The run an Idempotency-Key already made, provided the body is the same one."""
    if existing.input_hash != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used with a different body")
    return existing


def run_start(**kwargs: Any) -> tuple[Run, bool]:
    """Create the run and hand it to its executor (KLYNTOS_EXECUTOR): the in-process one once
    the row is committed, or a worker's job deferred in the same transaction."""
    with transaction.atomic():
        run, created = run_create(**kwargs, announce=False)
        if created and run.status != RunStatus.DEFERRED:  # a deferred one: the scheduler
            submit_run(run.pk)
        if created:
            # Once handed over: the announce is a round trip of the channel layer, which
            # the run's start would otherwise wait for (on_commit keeps this order).
            transaction.on_commit(lambda: _announce(run.workflow_id, run.pk))
    return run, created


RETRYABLE = {RunStatus.PARTIALLY_SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
KEPT_OPTIONS = ("sequential", "max_concurrent", "draft", "budget_usd", "weight", "priority")


def run_retry_failed(*, run: Run) -> Run:
    """A linked run of the same version and input that reuses `run`'s succeeded steps: its
    failed (and cancelled, never started) items run again from their failed step, and what
    reads the loops (the batch summary) runs again over the whole batch; no succeeded step
    is repeated (engine/memo_rows.memo_for_retry). Started like any run: rate-limited, and
    handed to the executor once committed."""
    if run.status not in RETRYABLE:
        raise NothingToRetry(
            "the run has not ended yet"
            if not run.is_final
            else f"nothing to retry: the run {run.status.replace('_', ' ')}"
        )
    _require_valid(run.version, run.owner)
    with transaction.atomic():
        locked = _lock_workflow(run.workflow_id)
        _take_run_token(locked)
        retry = Run.objects.create(
            owner=run.owner,
            workflow_id=run.workflow_id,
            version_id=run.version_id,
            input=run.input,
            trigger="retry",
            options={k: v for k, v in (run.options or {}).items() if k in KEPT_OPTIONS},
            input_hash=run.input_hash,
            retry_of=run,
        )
        # Retrying is the user's word that what failed is fixed: a breaker that gave up on a
        # provider during `run` closes again (it would refuse the retry's calls at once until
        # its next probes); a provider still down trips it again after `min_calls`.
        transaction.on_commit(lambda: _resume_given_up(run))
        submit_run(retry.pk)  # first: the announces below do not delay its start
        transaction.on_commit(lambda: _announce(run.workflow_id, retry.pk))
        # The source run's summary changed too (its `retries`): open editors read it again.
        transaction.on_commit(
            lambda: async_to_sync(publish_workflow_event)(run.workflow_id, "run.progress", run.pk)
        )
    return retry


def run_paused(run: Run) -> list[dict[str, Any]]:
    """The providers a run waits for: their breaker open or probing (none once it ended)."""
    return [] if run.is_final else paused_providers(run.providers)


def run_resume_provider(*, run: Run, provider: str | None, wait: float = 2.0) -> Run:
    """Resume a provider whose breaker paused the run (a manual breaker stays open until
    then): the breaker closes for every run on this process's executor, which shares it.
    `provider` may be left out when the run waits for one provider only."""
    from engine.runner import executor

    waiting = [p["provider"] for p in run_paused(run)]
    if provider is None and len(waiting) == 1:
        provider = waiting[0]
    if provider is None or provider not in waiting:
        named = f"on {provider}" if provider else "on a provider"
        raise NotPaused(
            f"this run is not paused {named}"
            + (f" (it waits for {', '.join(waiting)})" if waiting else "")
        )
    if not executor.resume_provider(provider):
        raise NotPaused(
            f"{provider}'s breaker is not open on this server (it closed already, or the run "
            "executes in another process)"
        )
    started = time.monotonic()
    while time.monotonic() - started < wait:  # the run's store writes the change shortly
        run.refresh_from_db()
        if provider not in {p["provider"] for p in run_paused(run)}:
            break
        time.sleep(0.02)
    return run


def _resume_given_up(run: Run) -> None:
    from engine.runner import executor

    for provider in gave_up_providers(run.providers):
        executor.resume_provider(provider)


def run_cancel(*, run: Run, wait: float = 5.0) -> Run:
    """Cancel a queued or running run; answers once the run is recorded as ended."""
    from engine.runner import executor

    if run.is_final:
        return run
    if executor.cancel(run.pk):
        started = time.monotonic()
        while time.monotonic() - started < wait:
            run.refresh_from_db()
            if run.is_final:
                return run
            if run.status == RunStatus.QUEUED and time.monotonic() - started > 0.5:
                break  # cancelled before it began: nothing will record its end
            time.sleep(0.02)
    # Not on this process's executor (or it did not stop in time): end it in the database,
    # with counters that add up as a final status promises (a client stops reading there).
    cancel_in_database(run.pk)
    async_to_sync(publish_run_ended)(run.pk, run.workflow_id)
    run.refresh_from_db()
    return run
