"""The engine's websocket route (klyntos/routing.py mounts it with builder's)."""

from django.urls import path

from engine.consumers import RunConsumer

# Any string: the consumer answers 4404 for an id that is not one of the user's runs
# (a malformed id included) rather than failing to route.
websocket_urlpatterns = [
    path("ws/runs/<str:run_id>/", RunConsumer.as_asgi()),
]
