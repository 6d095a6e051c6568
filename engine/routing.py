"""Websocket routes (klyntos/asgi.py mounts them behind the origin check and the session)."""

from django.urls import path

from engine.consumers import RunConsumer
from engine.workflow_socket import WorkflowConsumer

# Any string: the consumer answers 4404 for an id that is not one of the user's runs
# (a malformed id included) rather than failing to route.
websocket_urlpatterns = [
    path("ws/runs/<str:run_id>/", RunConsumer.as_asgi()),
    path("ws/workflows/<str:workflow_id>/", WorkflowConsumer.as_asgi()),
]
