"""Versions of a workflow over REST: the list, one version, a diff of two, restore one as
the draft, and publish (what production runs). Reads are owner-scoped like every other:
another user's workflow does not exist."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from builder import selectors, services
from builder.api import invalid, workflow_response
from builder.api_schema import WorkflowAnswerSerializer, answers, page_of, shape
from builder.models import Workflow, WorkflowVersion
from builder.version_diff import graph_diff


class VersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    live = serializers.SerializerMethodField()
    draft = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowVersion
        fields = ["number", "message", "created_at", "created_by", "published_at", "live", "draft"]

    def get_created_by(self, obj: WorkflowVersion) -> str | None:
        return obj.created_by.get_username() if obj.created_by else None

    def get_live(self, obj: WorkflowVersion) -> bool:
        """The version production runs."""
        return obj.pk == self.context["workflow"].published_version_id

    def get_draft(self, obj: WorkflowVersion) -> bool:
        """The newest saved version, the one the editor shows."""
        return obj.pk == self.context["workflow"].current_version_id


class VersionDetailSerializer(VersionSerializer):
    graph = serializers.JSONField()

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "graph"]


class PublishSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, help_text="default: the draft")
    message = serializers.CharField(max_length=500, required=False, allow_blank=True)


VersionPage = page_of("VersionPage", VersionSerializer(many=True))
FieldChange = shape(
    "FieldChange",
    path=serializers.CharField(),
    change=serializers.ChoiceField(choices=["added", "removed", "changed"]),
    before=serializers.JSONField(allow_null=True),
    after=serializers.JSONField(allow_null=True),
)
BlockLabel = shape(
    "BlockLabel",
    id=serializers.CharField(),
    name=serializers.CharField(),
    type=serializers.CharField(),
)
BlockChange = shape(
    "BlockChange",
    id=serializers.CharField(),
    name=serializers.CharField(),
    type=serializers.CharField(),
    fields=FieldChange(many=True),
)
EdgeLabel = shape(
    "EdgeLabel",
    source=serializers.CharField(),
    target=serializers.CharField(),
    handle=serializers.CharField(required=False),
)
VersionDiff = shape(
    "VersionDiff",
    **{"from": serializers.IntegerField()},
    to=serializers.IntegerField(),
    blocks=shape(
        "BlockDiff",
        added=BlockLabel(many=True),
        removed=BlockLabel(many=True),
        changed=BlockChange(many=True),
        moved=BlockLabel(many=True),
    )(),
    edges=shape("EdgeDiff", added=EdgeLabel(many=True), removed=EdgeLabel(many=True))(),
    pins=shape(
        "PinDiff",
        added=BlockLabel(many=True),
        removed=BlockLabel(many=True),
        changed=BlockLabel(many=True),
    )(),
)


def _version(workflow: Workflow, number: Any) -> WorkflowVersion:
    version = workflow.versions.select_related("created_by").filter(number=number).first()
    if version is None:
        raise Http404("no such version")
    return version


class VersionListView(APIView):
    @answers(VersionPage, 404)
    def get(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            workflow.versions.select_related("created_by").order_by("-number"), request, self
        )
        context = {"workflow": workflow}
        return paginator.get_paginated_response(
            VersionSerializer(page, many=True, context=context).data
        )


class VersionDetailView(APIView):
    @answers(VersionDetailSerializer, 404)
    def get(self, request: Request, pk: int, number: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        version = _version(workflow, number)
        return Response(VersionDetailSerializer(version, context={"workflow": workflow}).data)


class VersionRestoreView(APIView):
    @answers(WorkflowAnswerSerializer, 404, 409)
    def post(self, request: Request, pk: int, number: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        try:
            restored = services.version_restore(
                workflow=workflow, number=number, author=request.user
            )
        except services.StaleVersion as exc:
            return Response(
                {"error": str(exc), "current_version": exc.current}, status=status.HTTP_409_CONFLICT
            )
        except services.GraphInvalid as exc:  # past a size limit lowered since
            return invalid(exc)
        return workflow_response(request, restored)


class VersionDiffView(APIView):
    @answers(
        VersionDiff,
        400,
        404,
        parameters=[
            OpenApiParameter("from", int, required=True, description="the older version"),
            OpenApiParameter("to", int, required=True, description="the newer version"),
        ],
    )
    def get(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        numbers = {}
        for side in ("from", "to"):
            raw = request.query_params.get(side, "")
            if not raw.isdigit():
                return Response(
                    {"error": f"'{side}' must be a version number"},
                    status=status.HTTP_400_BAD_REQUEST,
                )
            numbers[side] = int(raw)
        before = _version(workflow, numbers["from"])
        after = _version(workflow, numbers["to"])
        return Response({**numbers, **graph_diff(before.graph, after.graph)})


class WorkflowPublishView(APIView):
    @answers(WorkflowAnswerSerializer, 400, 404, request=PublishSerializer)
    def post(self, request: Request, pk: int) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        form = PublishSerializer(data=request.data or {})
        form.is_valid(raise_exception=True)
        try:
            published = services.workflow_publish(
                workflow=workflow,
                number=form.validated_data.get("version"),
                message=form.validated_data.get("message", ""),
            )
        except services.GraphInvalid as exc:
            return invalid(exc)
        return workflow_response(request, published)
