"""What each REST view answers, declared for the OpenAPI schema (drf-spectacular).

`answers(...)` wraps `extend_schema`: the success status and shape, plus every refusal the
view can give — 401/403 for a caller who is not signed in, 404 for an object that is not the
caller's, 400/409/413/415/422 where the view or its parser refuses input. The schema is
checked against the running API by tests/hostile/test_hostile_suite_api_fuzz.py
(schemathesis): a status or a shape missing here fails that test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers

from builder.serializers import ItemRunSerializer, RunSummarySerializer, WorkflowSerializer


class ErrorSerializer(serializers.Serializer):
    """A refusal. Ours say what is wrong in `error`; DRF's own (authentication, permission,
    not found, parse errors) in `detail`; a form's field errors are keyed by field name."""

    error = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)


def shape(title: str, /, **fields: serializers.Field) -> type[serializers.Serializer]:
    """A response shape for the schema only (never used to read or write data), built this
    way because its field names (`errors`, `description`) shadow Serializer attributes."""
    return type(title, (serializers.Serializer,), fields)


ValidationIssue = shape(
    "ValidationIssue",
    block=serializers.CharField(allow_null=True),
    field=serializers.CharField(allow_null=True),
    message=serializers.CharField(),
    secret=serializers.CharField(
        required=False, help_text="the missing secret's name, on an <env.NAME> error"
    ),
)
Validation = shape(
    "Validation",
    ok=serializers.BooleanField(),
    errors=ValidationIssue(many=True),
    warnings=ValidationIssue(many=True, help_text="advice that blocks neither a save nor a run"),
)


class WorkflowAnswerSerializer(WorkflowSerializer):
    """A workflow as the API answers it: with the stored validation of its version."""

    validation = Validation(read_only=True)

    class Meta(WorkflowSerializer.Meta):
        fields = [*WorkflowSerializer.Meta.fields, "validation"]


ValidateAnswer = shape(
    "ValidateAnswer",
    ok=serializers.BooleanField(),
    errors=ValidationIssue(many=True),
    warnings=ValidationIssue(many=True, help_text="advice that blocks neither a save nor a run"),
    scopes=serializers.DictField(
        child=serializers.ListField(child=serializers.DictField()),
        help_text="per block id, the references in scope there",
    ),
    scopes_complete=serializers.BooleanField(
        help_text="false when KLYNTOS_MAX_SCOPE_ENTRIES cut the lists short"
    ),
)
BlockType = shape(
    "BlockType",
    type=serializers.CharField(),
    label=serializers.CharField(),
    description=serializers.CharField(),
    icon=serializers.CharField(),
    config_schema=serializers.DictField(help_text="JSON schema of the block's config"),
    outputs=serializers.DictField(help_text="JSON schema of its outputs"),
    test_effect=serializers.CharField(
        allow_blank=True, help_text="what testing the block alone really does"
    ),
)
TemplateSummary = shape(
    "TemplateSummary",
    slug=serializers.SlugField(),
    name=serializers.CharField(),
    description=serializers.CharField(allow_blank=True),
    pattern=serializers.CharField(
        allow_blank=True, help_text="the parallel-processing pattern the template shows"
    ),
    sample=serializers.JSONField(allow_null=True, help_text="a body to post to its webhook"),
    preview=serializers.DictField(
        help_text="a picture of its graph: `width`, `height`, `blocks` (name, type, x, y, "
        "width, height) and `edges` (source, target)"
    ),
)
SecretReader = shape(
    "SecretReader",
    id=serializers.IntegerField(),
    name=serializers.CharField(),
    draft=serializers.BooleanField(help_text="its draft (saved) version reads it"),
    live=serializers.BooleanField(help_text="its live (published) version reads it"),
)
SecretName = shape(
    "SecretName",
    name=serializers.CharField(),
    updated_at=serializers.DateTimeField(required=False),
    workflows=SecretReader(
        many=True, required=False, help_text="the workflows whose draft or live version reads it"
    ),
    missing=serializers.BooleanField(
        required=False, help_text="read by a workflow but not set (with ?referenced=1)"
    ),
)
WorkflowExport = shape(
    "WorkflowExport",
    kind=serializers.CharField(help_text="klyntos/workflow"),
    format=serializers.IntegerField(),
    name=serializers.CharField(),
    description=serializers.CharField(allow_blank=True),
    secrets=serializers.ListField(
        child=serializers.CharField(), help_text="names of the secrets it reads; never values"
    ),
    graph=serializers.DictField(),
)


def page_of(name: str, item: serializers.BaseSerializer) -> type[serializers.Serializer]:
    """DRF's page-number envelope around `item` (what PageNumberPagination answers)."""
    return shape(
        name,
        count=serializers.IntegerField(),
        next=serializers.URLField(allow_null=True),
        previous=serializers.URLField(allow_null=True),
        results=item,
    )


ItemPage = page_of("ItemPage", ItemRunSerializer(many=True))
RunPage = page_of("RunPage", RunSummarySerializer(many=True))

# Why each refusal happens, for the schema's descriptions.
REFUSALS = {
    400: "the request is not valid (the body says which field or block and why)",
    401: "not signed in",
    403: "not signed in (session) or not allowed",
    404: "no such object among the caller's (another user's objects do not exist for them)",
    405: "method not allowed",
    409: "conflict with the current state (a stale version, a secret a live version reads)",
    413: "the request body is larger than KLYNTOS_REQUEST_MAX_BYTES",
    415: "the request body is not JSON",
    422: "the input does not match the webhook's body schema",
    429: "too many runs started (KLYNTOS_RUNS_PER_MINUTE); see the Retry-After header",
}
# Every body-taking request can be refused by the parser and the body-size limit.
BODY_REFUSALS = (400, 413, 415)


def answers(
    ok: Any,
    *refusals: int,
    status: int = 200,
    request: Any = None,
    body: bool = False,
    parameters: Iterable[Any] | None = None,
) -> Callable[[Any], Any]:
    """`extend_schema` with the success answer and the refusals the view can give.

    `body=True` for views that read a JSON body (adds the parser's 400/413/415)."""
    codes = {401, 403, *refusals, *(BODY_REFUSALS if body else ())}
    responses: dict[int, Any] = {status: ok}
    for code in sorted(codes):
        responses[code] = OpenApiResponse(ErrorSerializer, description=REFUSALS[code])
    return extend_schema(
        request=request, responses=responses, parameters=list(parameters) if parameters else None
    )
