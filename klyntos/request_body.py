"""Every REST API request body read the same way, whatever its framing.

DRF reads a body only when `Content-Length` announces one, so a chunked body (no
`Content-Length`) reached the views as an empty `{}` and created an "Untitled workflow".
This Django middleware reads the body from the server's stream (everything that arrived,
already capped by `body_limit.py` in front of Django), answers 413 past
`KLYNTOS_REQUEST_MAX_BYTES` (for servers without those layers) and records the real length
as `CONTENT_LENGTH`, so DRF's parser sees exactly what was sent — and an empty body is
empty, whatever the framing (the views that need one answer 400: `builder/parsers.py`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from klyntos.body_limit import too_large_message

API_PREFIX = "/api/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RequestBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in BODY_METHODS and request.path.startswith(API_PREFIX):
            limit = settings.KLYNTOS_REQUEST_MAX_BYTES
            try:
                body = request.body
            except RequestDataTooBig:  # a declared length over Django's own cap
                return _too_large(limit)
            if len(body) > limit:
                return _too_large(limit)
            request.META["CONTENT_LENGTH"] = str(len(body))
        return self.get_response(request)


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse(
        {"error": too_large_message(limit, "KLYNTOS_REQUEST_MAX_BYTES")}, status=413
    )
