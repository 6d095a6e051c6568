"""The REST API's one request parser: JSON with the webhook endpoint's limits.

DRF's JSONParser recurses in json.loads (a 100k-deep body is a RecursionError, so a 500) and
hands PostgreSQL strings its jsonb cannot store (NUL, lone surrogates: another 500). This
parser refuses both with 400 before any view sees the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request

from builder.webhook_security import WebhookRequestError, load_json


class SafeJSONParser(JSONParser):
    """application/json: UTF-8, nested at most KLYNTOS_WEBHOOK_MAX_DEPTH, jsonb-storable.

    The only parser (settings.REST_FRAMEWORK): form and multipart bodies would reach the
    JSONFields as strings that skip these checks, and no client of the API sends them.
    """

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            return load_json(raw, max_depth=settings.KLYNTOS_WEBHOOK_MAX_DEPTH)
        except WebhookRequestError as exc:
            raise ParseError(exc.message) from None


class BodyRequired:
    """APIView mixin for views whose POST/PUT/PATCH take a body: it may not be empty.

    DRF turns an absent body into `{}`, which every all-optional serializer accepts: an
    empty request would create a default object. `klyntos/request_body.py` has set
    CONTENT_LENGTH to what really arrived, whatever the framing.
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]  # authentication first
        method = request.method or ""
        # Only for a method the view has: any other is DRF's 405, whatever the body.
        handled = hasattr(self, method.lower())
        if (
            handled
            and method in {"POST", "PUT", "PATCH"}
            and not int(request.META.get("CONTENT_LENGTH") or 0)
        ):
            raise ParseError("a request body is required (a JSON object)")
