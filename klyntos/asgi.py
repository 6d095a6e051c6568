"""ASGI entry: HTTP through the webhook body limit into Django; websockets via Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "klyntos.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from klyntos.body_limit import BodyLimitMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {"http": BodyLimitMiddleware(django_app, max_bytes=settings.KLYNTOS_WEBHOOK_MAX_BYTES)}
)
