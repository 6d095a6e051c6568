"""Every websocket route (klyntos/asgi.py mounts them behind the origin check and the session)."""

from builder.routing import websocket_urlpatterns as builder_routes
from engine.routing import websocket_urlpatterns as engine_routes

websocket_urlpatterns = [*engine_routes, *builder_routes]
