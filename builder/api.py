"""REST API (DRF). Views are thin: selectors read (owner-scoped), services write."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from builder import exports, gallery, run_reads, selectors, services
from builder.api_schema import (
    BlockType,
    RunPage,
    SecretName,
    TemplateSummary,
    ValidateAnswer,
    WorkflowAnswerSerializer,
    WorkflowExport,
    answers,
    shape,
)
from builder.models import Secret
from builder.parsers import BodyRequired
from builder.serializers import (
    ItemFilterSerializer,
    ItemListRowSerializer,
    ItemRunSerializer,
    PausedProviderSerializer,
    RunCostSummarySerializer,
    RunSerializer,
    RunStartSerializer,
    RunSummarySerializer,
    SecretWriteSerializer,
    SigningSecretSerializer,
    TemplateInstantiateSerializer,
    TimelineQuerySerializer,
    ValidateRequestSerializer,
    WorkflowSerializer,
    WorkflowWriteSerializer,
)
from builder.waiting import WaitRequestError, ask_to_wait, requested_wait
from builder.webhook_security import WebhookRequestError, parse_call_depth
from engine import run_costs
from engine.blocks import catalogue
from engine.core.outbound import CALL_DEPTH_HEADER
from engine.models import RunStatus


def invalid(exc: services.GraphInvalid) -> Response:
    if isinstance(exc, services.GraphOverLimit):
        return Response(
            {"error": exc.message, "limit": exc.setting}, status=status.HTTP_400_BAD_REQUEST
        )
    return Response(
        {"error": "the workflow is not valid", "errors": [e.as_dict() for e in exc.errors]},
        status=status.HTTP_400_BAD_REQUEST,
    )


def workflow_response(request: Request, workflow: Any, code: int = 200) -> Response:
    data = dict(WorkflowSerializer(workflow, context={"request": request}).data)
    version = workflow.current_version
    # The result stored with the version: a read never validates the graph again.
    errors = services.version_errors(version, workflow.owner) if version else []
    warnings = services.version_warnings(version) if version else []
    data["validation"] = {
        "ok": not errors,
        "errors": [e.as_dict() for e in errors],
        "warnings": [w.as_dict() for w in warnings],
    }
    return Response(data, status=code)


def scope_lists(
    scopes: Mapping[str, list[dict[str, Any]]], wanted: list[str] | None
) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """The picker's lists, for the blocks asked for (all when none are named), stopping
    once KLYNTOS_MAX_SCOPE_ENTRIES entries are out: across a long chain they add up to the
    square of its length. Returns the lists and whether they are complete."""
    budget = settings.KLYNTOS_MAX_SCOPE_ENTRIES
    answer: dict[str, list[dict[str, Any]]] = {}
    for block_id in wanted if wanted is not None else scopes:
        if block_id not in scopes:
            continue
        entries = scopes[block_id]
        budget -= len(entries)
        if budget < 0:
            return answer, False
        answer[block_id] = entries
    return answer, True


class WorkflowListView(BodyRequired, APIView):
    @answers(WorkflowSerializer(many=True))  # no validation in the list
    def get(self, request: Request) -> Response:
        workflows = selectors.workflows_for(request.user).select_related("webhook")
        return Response(WorkflowSerializer(workflows, many=True, context={"request": request}).data)

    @answers(WorkflowAnswerSerializer, status=201, request=WorkflowWriteSerializer, body=True)
    def post(self, request: Request) -> Response:
        form = WorkflowWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            workflow = services.workflow_create(
                owner=request.user,
                name=form.validated_data.get("name") or "Untitled workflow",
                description=form.validated_data.get("description", ""),
                graph=form.validated_data.get("graph") or {"blocks": [], "edges": []},
                message=form.validated_data.get("message", ""),
            )
        except services.GraphInvalid as exc:
            return invalid(exc)
        return workflow_response(request, workflow, status.HTTP_201_CREATED)


class WorkflowDetailView(BodyRequired, APIView):
    @answers(WorkflowAnswerSerializer, 404)
    def get(self, request: Request, pk: int) -> Response:
        return workflow_response(request, selectors.workflow_get(request.user, pk))

    @answers(WorkflowAnswerSerializer, 404, 409, request=WorkflowWriteSerializer, body=True)
    def put(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        form = WorkflowWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            if "graph" in data:
                if "base_version" not in data:
                    return Response(
                        {"error": "base_version is required when saving a graph"}, status=400
                    )
                workflow = services.workflow_save(
                    workflow=workflow,
                    graph=data["graph"],
                    base_version=data["base_version"],
                    name=data.get("name"),
                    message=data.get("message", ""),
                    author=request.user,
                    publish=data["publish"],
                )
            elif data["publish"]:
                workflow = services.workflow_publish(
                    workflow=workflow, message=data.get("message", "")
                )
            elif data.get("name"):
                workflow = services.workflow_rename(workflow=workflow, name=data["name"])
            if "budget_usd" in data:
                workflow = services.workflow_set_budget(
                    workflow=workflow, budget_usd=data["budget_usd"]
                )
        except services.StaleVersion as exc:
            return Response(
                {"error": str(exc), "current_version": exc.current}, status=status.HTTP_409_CONFLICT
            )
        except services.GraphInvalid as exc:
            return invalid(exc)
        return workflow_response(request, workflow)

    patch = put

    @answers(None, 404, status=204)
    def delete(self, request: Request, pk: int) -> Response:
        services.workflow_delete(workflow=selectors.workflow_get(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkflowValidateView(APIView):
    """Validates the posted graph (or the saved one) and lists each block's references."""

    @answers(ValidateAnswer, 404, request=ValidateRequestSerializer, body=True)
    def post(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        form = ValidateRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        graph = form.validated_data.get("graph")
        if graph is None:
            graph = workflow.current_version.graph if workflow.current_version else {}
        try:
            result = services.graph_validate(owner=request.user, graph=graph)
        except services.GraphInvalid as exc:
            return invalid(exc)
        scopes, complete = scope_lists(result.scopes, form.validated_data.get("blocks"))
        return Response(
            {
                "ok": result.ok,
                "errors": [e.as_dict() for e in result.errors],
                "warnings": [w.as_dict() for w in result.warnings],
                "scopes": scopes,
                "scopes_complete": complete,
            }
        )


class WorkflowDuplicateView(APIView):
    @answers(WorkflowAnswerSerializer, 404, status=201)
    def post(self, request: Request, pk: int) -> Response:
        source = selectors.workflow_get(request.user, pk)
        graph = (
            source.current_version.graph if source.current_version else {"blocks": [], "edges": []}
        )
        copy = services.workflow_create(
            owner=request.user,
            name=f"{source.name} (copy)",
            graph=graph,
            description=source.description,
            # A template's copy keeps what it came from: the Run panel offers its sample input.
            template_slug=source.template_slug,
        )
        return workflow_response(request, copy, status.HTTP_201_CREATED)


PINS_PARAMETER = OpenApiParameter(
    "pins", bool, description="keep the blocks' pinned test data (left out by default)"
)


class WorkflowExportView(APIView):
    """The saved workflow as a file to import elsewhere: secrets by name only, pinned test
    data only with `?pins=1`."""

    @answers(WorkflowExport, 404, parameters=[PINS_PARAMETER])
    def get(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        filename = exports.export_filename(workflow.name)
        pins = request.query_params.get("pins") in ("1", "true")
        return Response(
            exports.workflow_export(workflow, pins=pins),
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


WAIT_PARAMETER = OpenApiParameter(
    "wait",
    float,
    description=(
        "seconds to wait for the run's answer (also `Prefer: wait=<seconds>`), at most "
        "KLYNTOS_MAX_WAIT_SECONDS: when the run ends in time the answer is what its Response "
        "block defines (or its last block's output, 200) instead of 201 with the run"
    ),
)


class WorkflowRunsView(BodyRequired, APIView):
    @answers(
        RunSerializer,
        404,
        409,
        422,
        429,
        status=201,
        request=RunStartSerializer,
        body=True,
        parameters=[WAIT_PARAMETER],
    )
    def post(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        form = RunStartSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            depth = parse_call_depth(
                request.headers.get(CALL_DEPTH_HEADER), max_depth=settings.KLYNTOS_MAX_CALL_DEPTH
            )
        except WebhookRequestError as exc:
            return Response({"error": exc.message}, status=exc.status)
        try:
            wait = requested_wait(
                request.headers.get("Prefer"),
                request.query_params.get("wait"),
                settings.KLYNTOS_MAX_WAIT_SECONDS,
            )
        except WaitRequestError as exc:
            return Response({"error": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        options = {
            k: form.validated_data[k]
            for k in (
                "sequential",
                "max_concurrent",
                "budget_usd",
                "sample_items",
                "weight",
                "priority",
                "defer",
            )
            if form.validated_data.get(k) is not None and form.validated_data.get(k) is not False
        }
        try:
            run, _ = services.run_start(
                workflow=workflow,
                input=form.validated_data["input"],
                options=options,
                call_depth=depth,
                draft=form.validated_data["version"] == "draft",
                trigger=form.validated_data["trigger"],
            )
        except services.NotPublished as exc:
            return Response({"error": exc.errors[0].message}, status=status.HTTP_409_CONFLICT)
        except services.GraphInvalid as exc:
            return invalid(exc)
        except services.CannotDefer as exc:
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except services.RateLimited as exc:
            return Response(
                {"error": str(exc)},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        except services.BodyMismatch as exc:
            return Response(
                {"error": str(exc), "details": exc.problems},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if wait and run.status != RunStatus.DEFERRED:  # its answer, when it ends in time
            ask_to_wait(request, run.pk, wait)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @answers(RunPage, 404)
    def get(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            selectors.runs_for(request.user)
            .filter(workflow=workflow)
            .select_related("version")
            .prefetch_related("retries"),
            request,
            self,
        )
        found = run_costs.summaries(page or [])
        return paginator.get_paginated_response(
            RunSummarySerializer(page, many=True, context={"summaries": found}).data
        )


class WebhookSecretView(APIView):
    """Rotates the webhook's signing secret; the new value is shown once, in this answer."""

    @answers(SigningSecretSerializer, 404, status=201)
    def post(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        secret = services.webhook_rotate_secret(webhook=workflow.webhook)
        return Response({"signing_secret": secret}, status=status.HTTP_201_CREATED)

    @answers(None, 404, status=204)
    def delete(self, request: Request, pk: int) -> Response:
        webhook = selectors.workflow_get(request.user, pk).webhook
        webhook.set_signing_secret("")
        webhook.save(update_fields=["signing_secret_encrypted"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunDetailView(APIView):
    @answers(RunSerializer, 404)
    def get(self, request: Request, pk: str) -> Response:
        return Response(RunSerializer(selectors.run_get(request.user, pk)).data)


RunCostAnswer = shape(
    "RunCostAnswer",
    id=serializers.UUIDField(),
    status=serializers.CharField(),
    summary=RunCostSummarySerializer(),
    paused=PausedProviderSerializer(many=True),
)


class RunSummaryView(APIView):
    """A run's cost line alone (wall and sequential time, speedup, tokens, dollars): what
    the editor re-reads while a run goes on, without the run's outputs."""

    @answers(RunCostAnswer, 404)
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.run_get(request.user, pk)
        return Response(
            {
                "id": str(run.pk),
                "status": run.status,
                "summary": run_costs.summary(run),
                "paused": services.run_paused(run),
            }
        )


# Free-form JSON answers, shaped as docs/run-protocol.md describes.
OBJECT_ANSWER = OpenApiResponse(description="JSON object, see docs/run-protocol.md")
# A page of items (docs/run-protocol.md): an opaque cursor, rows without steps (the `key`
# detail adds them).
ItemCursorPage = shape(
    "ItemCursorPage",
    count=serializers.IntegerField(),
    next=serializers.CharField(allow_null=True),
    count_capped=serializers.BooleanField(required=False),
    results=ItemListRowSerializer(many=True),
)


def _query(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """The given query parameters, empty ones left out ("no filter"); `from`/`to` renamed."""
    renamed = {"from": "window_from", "to": "window_to"}
    return {
        renamed.get(k, k): str(v)
        for k, v in request.query_params.items()
        if renamed.get(k, k) in names and v != ""
    }


class RunItemsView(APIView):
    """One page of a run's items (keyset cursor or offset, filters, search), or one item with
    its steps when `key` is given. Bounded: at most `limit` (<= 200) rows, whatever the run's N."""

    @answers(ItemCursorPage, 400, 404, parameters=[ItemFilterSerializer])
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.run_get(request.user, pk)
        filters = ItemFilterSerializer(data=_query(request, tuple(ItemFilterSerializer().fields)))
        filters.is_valid(raise_exception=True)
        given = filters.validated_data
        if "key" in given:  # the detail panel: that one item, with its steps and outputs
            found = list(selectors.items_of(run).filter(key=given["key"]))
            steps: dict[str, list[Any]] = {}
            for step in selectors.steps_of(run, [i.key for i in found]):
                steps.setdefault(step.item_key, []).append(step)
            costs = {
                key: run_costs.usage_cost([step.usage for step in listed])
                for key, listed in steps.items()
            }
            data = ItemRunSerializer(
                found, many=True, context={"steps": steps, "costs": costs}
            ).data
            return Response({"results": data, "next": None, "count": len(found)})
        wanted = run_reads.ItemFilters(
            status=given.get("status"),
            q=given.get("q"),
            loop=given.get("loop"),
            window=(given.get("window_from"), given.get("window_to")),
            durations=(given.get("min_duration"), given.get("max_duration")),
        )
        try:
            rows, following, count, capped = run_reads.item_page(
                run,
                wanted,
                limit=given.get("limit", run_reads.PAGE_DEFAULT),
                cursor=given.get("cursor"),
                offset=given.get("offset", 0),
            )
        except run_reads.BadParameter as exc:
            return Response({"error": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        costs = run_costs.item_costs(run, [row.key for row in rows])
        body: dict[str, Any] = {
            "results": ItemListRowSerializer(rows, many=True, context={"costs": costs}).data,
            "next": following,
            "count": count,
        }
        if capped:
            body["count_capped"] = True
        return Response(body)


class RunTimelineView(APIView):
    """Items in flight over time and a duration histogram for a window of the run."""

    @answers(OBJECT_ANSWER, 400, 404, parameters=[TimelineQuerySerializer])
    def get(self, request: Request, pk: str) -> Response:
        run = selectors.run_get(request.user, pk)
        form = TimelineQuerySerializer(
            data=_query(request, tuple(TimelineQuerySerializer().fields))
        )
        form.is_valid(raise_exception=True)
        given = form.validated_data
        start, end = given.get("window_from"), given.get("window_to")
        if start is not None and end is not None and end <= start:
            return Response({"error": "to: must be after from"}, status=400)
        return Response(
            run_reads.timeline(
                run,
                start=start,
                end=end,
                buckets=given.get("buckets", run_reads.BUCKETS_DEFAULT),
                loop=given.get("loop"),
            )
        )


class WorkflowLastRunView(APIView):
    """The workflow's most recent run, running or ended (`null` when it never ran)."""

    @answers(OBJECT_ANSWER, 404)
    def get(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        run = selectors.runs_for(request.user).filter(workflow=workflow).select_related("version")
        last = run.first()
        return Response({"run": RunSummarySerializer(last).data if last is not None else None})


class RunCancelView(APIView):
    @answers(RunSerializer, 404)
    def post(self, request: Request, pk: str) -> Response:
        run = services.run_cancel(run=selectors.run_get(request.user, pk))
        return Response(RunSerializer(run).data)


ResumeProviderRequest = shape(
    "ResumeProviderRequest",
    provider=serializers.CharField(
        required=False, help_text="the provider key; optional when the run waits for one only"
    ),
)


class RunResumeProviderView(APIView):
    """Resume a provider whose breaker paused the run (services.run_resume_provider)."""

    @answers(RunSerializer, 400, 404, 409, request=ResumeProviderRequest, body=True)
    def post(self, request: Request, pk: str) -> Response:
        run = selectors.run_get(request.user, pk)
        data = request.data if isinstance(request.data, Mapping) else {}
        provider = data.get("provider")
        if provider is not None and not isinstance(provider, str):
            return Response(
                {"error": "provider must be a provider key such as api.clearbit.com"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            run = services.run_resume_provider(run=run, provider=provider or None)
        except services.NotPaused as exc:
            return Response({"error": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(run).data)


class RunRetryFailedView(APIView):
    """A linked run that repeats only what failed (services.run_retry_failed)."""

    @answers(RunSerializer, 400, 404, 409, 429, status=201)
    def post(self, request: Request, pk: str) -> Response:
        source = selectors.run_get(request.user, pk)
        try:
            run = services.run_retry_failed(run=source)
        except services.NothingToRetry as exc:
            return Response({"error": str(exc)}, status=status.HTTP_409_CONFLICT)
        except services.GraphInvalid as exc:
            return invalid(exc)
        except services.RateLimited as exc:
            return Response(
                {"error": str(exc)},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class BlockCatalogueView(APIView):
    @answers(BlockType(many=True))
    def get(self, request: Request) -> Response:
        return Response(catalogue())


class TemplateListView(APIView):
    @answers(TemplateSummary(many=True))
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "slug": t["slug"],
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "pattern": t.get("pattern", ""),
                    "sample": t.get("sample"),
                    "preview": gallery.template_preview(t["graph"]),
                }
                for t in gallery.templates().values()
            ]
        )


class TemplateInstantiateView(BodyRequired, APIView):
    @answers(
        WorkflowAnswerSerializer, 404, status=201, request=TemplateInstantiateSerializer, body=True
    )
    def post(self, request: Request, slug: str) -> Response:
        form = TemplateInstantiateSerializer(data=request.data)  # refuses non-object bodies
        form.is_valid(raise_exception=True)
        workflow = gallery.template_instantiate(
            owner=request.user, slug=slug, name=form.validated_data.get("name") or None
        )
        return workflow_response(request, workflow, status.HTTP_201_CREATED)


REFERENCED_PARAMETER = OpenApiParameter(
    "referenced",
    bool,
    description=(
        "also list the names the caller's workflows read but that are not set (neither a "
        "secret nor an allow-listed process variable), with `missing: true`"
    ),
)


class SecretListView(BodyRequired, APIView):
    """Secret names only; values are write-only and never returned. Each name comes with the
    workflows whose saved version reads it (`<env.NAME>`)."""

    @answers(SecretName(many=True), parameters=[REFERENCED_PARAMETER])
    def get(self, request: Request) -> Response:
        secrets = list(Secret.objects.filter(owner_id=request.user.pk).order_by("name"))
        usage = exports.secret_usage(request.user)
        answer: list[dict[str, Any]] = [
            {"name": s.name, "updated_at": s.updated_at, "workflows": usage.get(s.name, [])}
            for s in secrets
        ]
        if request.query_params.get("referenced") in ("1", "true"):
            available = set(selectors.env_names_for(request.user.pk))
            answer += [
                {"name": name, "workflows": workflows, "missing": True}
                for name, workflows in sorted(usage.items())
                if name not in available
            ]
        return Response(answer)

    @answers(SecretName, status=201, request=SecretWriteSerializer, body=True)
    def post(self, request: Request) -> Response:
        form = SecretWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        secret = services.secret_set(owner=request.user, **form.validated_data)
        return Response({"name": secret.name}, status=status.HTTP_201_CREATED)


FORCE_PARAMETER = OpenApiParameter(
    "force",
    bool,
    description="delete it even though a live (published) version reads it: that workflow's "
    "webhook, schedules and API runs are refused until it is set again or a version without "
    "it is published",
)


class SecretDetailView(APIView):
    """One of the caller's secrets, by name (another user's names do not exist for them)."""

    @answers(None, 404, 409, status=204, parameters=[FORCE_PARAMETER])
    def delete(self, request: Request, name: str) -> Response:
        secret = selectors.secret_get(request.user, name)
        readers = exports.live_readers(request.user, secret.name)
        if readers and request.query_params.get("force") not in ("1", "true"):
            names = ", ".join(f"'{w['name']}'" for w in readers)
            return Response(
                {
                    "error": f"{secret.name} is read by the live version of {names}: deleting "
                    "it makes their webhook, schedules and API runs refused until it is set "
                    "again or a version without it is published; add ?force=true to delete "
                    "it anyway",
                    "workflows": readers,
                },
                status=status.HTTP_409_CONFLICT,
            )
        services.secret_delete(secret=secret)
        return Response(status=status.HTTP_204_NO_CONTENT)
