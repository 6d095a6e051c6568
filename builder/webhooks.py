"""POST /hooks/<token>: starts a run of the workflow behind an unguessable token, and with
`Prefer: wait=<seconds>` (or `?wait=`) answers with the run's output when it ends in time
(builder/waiting.py).

Body size is limited earlier, by the ASGI layer (klyntos/body_limit.py). A refused request
creates no run.
"""

from __future__ import annotations

import datetime
import time

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from builder.selectors import webhook_by_token
from builder.services import (
    BodyMismatch,
    CannotDefer,
    GraphInvalid,
    IdempotencyConflict,
    NotPublished,
    RateLimited,
    run_start,
)
from builder.waiting import WaitRequestError, ask_to_wait, requested_wait
from builder.webhook_security import (
    DEFAULT_TOLERANCE,
    WebhookRequestError,
    parse_call_depth,
    parse_json_body,
    verify_signature,
)
from engine.core.off_peak import DEFER_OFF_PEAK
from engine.core.outbound import CALL_DEPTH_HEADER
from engine.models import RunStatus


def _error(status: int, message: str, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


@csrf_exempt
@require_POST
def webhook_receive(request: HttpRequest, token: str) -> JsonResponse:
    webhook = webhook_by_token(token)
    if webhook is None or webhook.workflow.current_version is None:
        return _error(404, "no webhook with this token")
    raw = request.body
    delivery = None
    try:
        depth = parse_call_depth(
            request.headers.get(CALL_DEPTH_HEADER), max_depth=settings.KLYNTOS_MAX_CALL_DEPTH
        )
        if webhook.signing_secret_encrypted:
            signed_at, signature = verify_signature(
                webhook.signing_secret,
                request.headers.get("X-Klyntos-Signature"),
                raw,
                now=time.time(),
            )
            # Remembered until the signature expires: a verbatim replay gets this run.
            expires = datetime.datetime.fromtimestamp(signed_at + DEFAULT_TOLERANCE, datetime.UTC)
            delivery = (webhook, signature, expires)
        body = parse_json_body(
            raw,
            content_type=request.headers.get("Content-Type"),
            max_depth=settings.KLYNTOS_WEBHOOK_MAX_DEPTH,
            content_encoding=request.headers.get("Content-Encoding"),
        )
    except WebhookRequestError as exc:
        return _error(exc.status, exc.message)
    try:
        wait = requested_wait(
            request.headers.get("Prefer"),
            request.GET.get("wait"),
            settings.KLYNTOS_MAX_WAIT_SECONDS,
        )
    except WaitRequestError as exc:
        return _error(400, exc.message)
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 200:
        return _error(400, "Idempotency-Key is longer than 200 characters")
    # `?defer=off_peak`: outside the off-peak window the run waits for it (deferred).
    defer = request.GET.get("defer", "")
    if defer and defer != DEFER_OFF_PEAK:
        return _error(400, f"defer must be {DEFER_OFF_PEAK!r}")
    try:
        run, created = run_start(
            workflow=webhook.workflow,
            input=body,
            trigger="webhook",
            idempotency_key=key,
            call_depth=depth,
            delivery=delivery,
            options={"defer": defer} if defer else None,
        )
    except CannotDefer as exc:
        return _error(400, str(exc))
    except IdempotencyConflict as exc:
        return _error(409, str(exc))
    except RateLimited as exc:
        response = _error(429, str(exc))
        response["Retry-After"] = str(exc.retry_after)
        return response
    except Http404:  # the workflow was deleted while this request was on its way
        return _error(404, "no webhook with this token")
    except BodyMismatch as exc:
        return _error(422, str(exc), details=exc.problems)
    except NotPublished:
        return _error(409, "the workflow has no published version; publish it in the editor")
    except GraphInvalid:
        # Whoever holds the token may be a third party: the errors name blocks and the
        # owner's secrets, so they stay in the editor.
        return _error(409, "the workflow is not valid; open it in the editor")
    status_url = request.build_absolute_uri(reverse("run-detail", args=[run.pk]))
    answer: dict[str, object] = {"run_id": str(run.pk), "status_url": status_url}
    deferred = run.status == RunStatus.DEFERRED
    if deferred and run.deferred_until is not None:
        answer["deferred_until"] = run.deferred_until.isoformat()
    response = JsonResponse(answer, status=202)
    if not created:
        response["Idempotent-Replayed"] = "true"
    if (
        wait and not deferred
    ):  # a replay waits on the same run (its answer at once when it has ended)
        ask_to_wait(request, run.pk, wait, replayed=not created)
    return response
