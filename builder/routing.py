"""Builder's websocket route: the workflow socket an open editor listens on."""

from django.urls import path

from builder.workflow_socket import WorkflowConsumer

# Any string: 4404 for an id that is not one of the user's workflows, as for runs.
websocket_urlpatterns = [
    path("ws/workflows/<str:workflow_id>/", WorkflowConsumer.as_asgi()),
]
