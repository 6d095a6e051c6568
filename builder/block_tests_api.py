"""Test one block (the editor's "Test this block"): `GET` (or `POST` with `dry_run`, for the
editor's unsaved graph) says what the test would be given (each input's value and where it
comes from: the body, a pin, the last run or a chosen one); `POST` runs that block alone,
for real, and answers its output, attempts, duration, error and the config as resolved,
secrets masked. Owner-scoped: another user's workflow is a 404."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from builder import selectors
from builder.api_schema import answers, shape
from builder.block_tests import Inputs, gather
from builder.models import Workflow
from builder.parsers import BodyRequired
from engine import secrets_registry
from engine.blocks import REGISTRY
from engine.config import graph_limits
from engine.core.bounded import json_size
from engine.core.graph import Block, Graph, GraphFormatError, parse_graph
from engine.core.limits import GraphTooLarge, check_graph_size
from engine.core.single_step import MissingInput, config_problems, untestable_reason
from engine.models import Run
from engine.single_step import run_single_step


class BlockTestSerializer(serializers.Serializer):
    inputs = serializers.DictField(
        required=False, help_text="values by the names the block reads; others come from pins"
    )
    trigger_input = serializers.JSONField(
        required=False, help_text="for a trigger block: the input it is tested with"
    )
    graph = serializers.JSONField(
        required=False, help_text="the editor's graph (unsaved edits); the saved draft if omitted"
    )
    run = serializers.UUIDField(
        required=False, help_text="take missing inputs from this run (default: the last one)"
    )
    pins = serializers.BooleanField(default=True, help_text="use pinned values (default yes)")
    dry_run = serializers.BooleanField(
        default=False, help_text="answer what the test would be given (as GET) without running"
    )


BlockRef = shape(
    "BlockRef",
    id=serializers.CharField(),
    name=serializers.CharField(),
    type=serializers.CharField(),
)
_INPUT_FIELDS: dict[str, serializers.Field] = {
    "inputs": serializers.DictField(help_text="the value of each name the block reads"),
    "sources": serializers.DictField(
        help_text="per name: kind (output, item, iteration, unknown), block, from (given, "
        "pin, run, missing)"
    ),
    "notes": serializers.ListField(child=serializers.CharField()),
    "trigger_input": serializers.JSONField(allow_null=True),
    "trigger_from": serializers.CharField(),
}
BlockTestPlan = shape(
    "BlockTestPlan",
    block=BlockRef(),
    testable=serializers.BooleanField(),
    reason=serializers.CharField(allow_blank=True),
    effect=serializers.CharField(allow_blank=True, help_text="what a test really does"),
    run=serializers.UUIDField(allow_null=True),
    **_INPUT_FIELDS,
)
# What a test answers; with `dry_run`, the plan instead (no status, output, …: not run).
BlockTestResult = shape(
    "BlockTestResult",
    block=BlockRef(),
    status=serializers.ChoiceField(choices=["succeeded", "failed"], required=False),
    output=serializers.JSONField(allow_null=True, required=False),
    error=serializers.CharField(allow_null=True, required=False),
    attempts=serializers.IntegerField(required=False),
    duration=serializers.FloatField(required=False),
    usage=serializers.ListField(child=serializers.DictField(), required=False),
    retries=serializers.ListField(child=serializers.DictField(), required=False),
    config=serializers.DictField(
        required=False, help_text="the config as resolved, secrets masked"
    ),
    testable=serializers.BooleanField(required=False),
    reason=serializers.CharField(allow_blank=True, required=False),
    effect=serializers.CharField(allow_blank=True),
    run=serializers.UUIDField(allow_null=True),
    **_INPUT_FIELDS,
)
RUN_PARAMETER = OpenApiParameter(
    "run", str, description="take inputs from this run (default: the workflow's last run)"
)


class _Refused(Exception):
    def __init__(self, body: dict[str, Any], code: int = status.HTTP_400_BAD_REQUEST) -> None:
        self.body = body
        self.code = code


def _graph(workflow: Workflow, posted: Any) -> Graph:
    raw = posted
    if raw is None:
        raw = workflow.current_version.graph if workflow.current_version else {}
    try:
        check_graph_size(raw, graph_limits())
        return parse_graph(raw)
    except GraphTooLarge as exc:
        raise _Refused({"error": str(exc), "limit": exc.setting}) from None
    except GraphFormatError as exc:
        raise _Refused({"error": str(exc)}) from None


def _block(graph: Graph, block_id: str) -> Block:
    block = graph.by_id.get(block_id)
    if block is None:
        raise Http404("no such block in this workflow")
    if block.type not in REGISTRY:
        raise _Refused({"error": f"{block.name}: unknown block type '{block.type}'"})
    return block


def _run(user: Any, workflow: Workflow, run_id: Any) -> Run | None:
    if run_id is None:
        return selectors.runs_for(user).filter(workflow=workflow).first()
    run = selectors.run_get(user, run_id)
    if run.workflow_id != workflow.pk:
        raise Http404("no such run of this workflow")
    return run


def _ref(block: Block) -> dict[str, str]:
    return {"id": block.id, "name": block.name, "type": block.type}


def _effect(block: Block) -> str:
    return REGISTRY[block.type].test_effect


def _answer(
    owner_id: Any, block: Block, inputs: Inputs, run: Run | None, **more: Any
) -> dict[str, Any]:
    """Masked again with the owner's secrets of now: inputs typed by hand or pinned long ago
    may hold a value that is a secret today."""
    answer = {
        "block": _ref(block),
        "effect": _effect(block),
        "run": str(run.pk) if run is not None else None,
        **inputs.as_dict(),
        **more,
    }
    masked: dict[str, Any] = secrets_registry.owner_redactor(owner_id).value(answer)
    return masked


def _plan(
    workflow: Workflow, graph: Graph, block: Block, run: Run | None, inputs: Inputs
) -> dict[str, Any]:
    reason = untestable_reason(block) or ""
    return _answer(workflow.owner_id, block, inputs, run, testable=not reason, reason=reason)


class BlockTestView(BodyRequired, APIView):
    @answers(BlockTestPlan, 400, 404, parameters=[RUN_PARAMETER])
    def get(self, request: Request, pk: int, block_id: str) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        try:
            graph = _graph(workflow, None)
            block = _block(graph, block_id)
        except _Refused as refused:
            return Response(refused.body, status=refused.code)
        run = _run(request.user, workflow, request.query_params.get("run") or None)
        return Response(_plan(workflow, graph, block, run, gather(graph, block, run=run)))

    @answers(BlockTestResult, 400, 404, request=BlockTestSerializer, body=True)
    def post(self, request: Request, pk: int, block_id: str) -> Response:
        workflow = selectors.workflow_get(request.user, pk)
        form = BlockTestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            return self._test(request, workflow, block_id, data)
        except _Refused as refused:
            return Response(refused.body, status=refused.code)

    def _test(
        self, request: Request, workflow: Workflow, block_id: str, data: dict[str, Any]
    ) -> Response:
        given = {"inputs": data.get("inputs") or {}, "trigger_input": data.get("trigger_input")}
        size = json_size(given)
        if size > settings.KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES:
            raise _Refused(
                {
                    "error": f"the test's inputs are {size} bytes; the limit is "
                    f"{settings.KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES} "
                    "(KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES)",
                    "limit": "KLYNTOS_BLOCK_TEST_MAX_INPUT_BYTES",
                }
            )
        graph = _graph(workflow, data.get("graph"))
        block = _block(graph, block_id)
        run = _run(request.user, workflow, data.get("run"))
        inputs = gather(
            graph,
            block,
            given=given["inputs"],
            given_trigger=given["trigger_input"],
            has_trigger="trigger_input" in data,
            use_pins=data["pins"],
            run=run,
        )
        if data["dry_run"]:
            return Response(_plan(workflow, graph, block, run, inputs))
        reason = untestable_reason(block)
        if reason:
            raise _Refused({"error": f"{block.name}: {reason}", "block": block.id})
        problems = config_problems(REGISTRY[block.type], block.config)
        if problems:
            raise _Refused(
                {
                    "error": f"{block.name}: fix its settings first",
                    "block": block.id,
                    "errors": [{"block": block.id, "field": f, "message": m} for f, m in problems],
                }
            )
        try:
            result = run_single_step(
                owner_id=workflow.owner_id,
                graph=graph,
                block=block,
                values=inputs.values,
                trigger_input=inputs.trigger_input,
            )
        except MissingInput as exc:
            raise _Refused(
                {
                    "error": str(exc),
                    "block": block.id,
                    "field": exc.field,
                    "reference": exc.reference.text,
                    "sources": inputs.sources,
                }
            ) from None
        return Response(_answer(workflow.owner_id, block, inputs, run, **result.as_dict()))
