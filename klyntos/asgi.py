"""ASGI entry: HTTP through the webhook body limit into Django; websockets via Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "klyntos.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from klyntos.body_limit import BodyLimitMiddleware, install_daphne_body_limit  # noqa: E402

# Daphne reads a whole request body before calling the app; this guard answers 413 from the
# connection itself as soon as the declared or received size of a webhook body is too large.
install_daphne_body_limit(max_bytes=settings.KLYNTOS_WEBHOOK_MAX_BYTES)

application = ProtocolTypeRouter(
    {"http": BodyLimitMiddleware(django_app, max_bytes=settings.KLYNTOS_WEBHOOK_MAX_BYTES)}
)
