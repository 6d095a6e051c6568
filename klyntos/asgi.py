"""ASGI entry: HTTP through the webhook body limit into Django; websockets via Channels."""

import asyncio
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "klyntos.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()  # sets Django up: import models only below this line

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from builder.waiting import AnswerWhenDone  # noqa: E402
from engine.core.give_way import PRIORITY  # noqa: E402
from engine.publish import attach_web_loop  # noqa: E402
from klyntos.body_limit import BodyLimitMiddleware, install_daphne_body_limit  # noqa: E402
from klyntos.routing import websocket_urlpatterns  # noqa: E402

API_PREFIXES = ("/api/",)

# Daphne reads a whole request body before calling the app; this guard answers 413 from the
# connection itself as soon as the declared or received size of a webhook (or REST API) body
# is too large. Every 413 names the setting that raises its limit.
install_daphne_body_limit(
    max_bytes=settings.KLYNTOS_WEBHOOK_MAX_BYTES,
    setting="KLYNTOS_WEBHOOK_MAX_BYTES",
    more=[(API_PREFIXES, settings.KLYNTOS_REQUEST_MAX_BYTES, "KLYNTOS_REQUEST_MAX_BYTES")],
)


def record_web_loop(app: Any) -> Any:
    """Tells engine/publish.py which loop the consumers live on (runs execute elsewhere), and
    marks HTTP requests as priority work while they are served."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        attach_web_loop(asyncio.get_running_loop())
        if scope["type"] != "http":  # a websocket lasts as long as the page: not a request
            await app(scope, receive, send)
            return
        with PRIORITY.running():  # runs back off while a request is served (give_way.py)
            await app(scope, receive, send)

    return wrapper


application = record_web_loop(
    ProtocolTypeRouter(
        {
            # A request that asked to wait for its run gets the run's answer here, on this
            # loop, without holding a thread (builder/waiting.py).
            "http": AnswerWhenDone(
                BodyLimitMiddleware(
                    # Django's handler is a valid ASGI app; its annotation is narrower than ASGIApp's.
                    BodyLimitMiddleware(
                        django_app,  # type: ignore[arg-type]
                        max_bytes=settings.KLYNTOS_WEBHOOK_MAX_BYTES,
                        setting="KLYNTOS_WEBHOOK_MAX_BYTES",
                    ),
                    max_bytes=settings.KLYNTOS_REQUEST_MAX_BYTES,
                    path_prefixes=API_PREFIXES,
                    setting="KLYNTOS_REQUEST_MAX_BYTES",
                )
            ),
            # Browsers only (Origin must be an allowed host), signed in with the session cookie.
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
