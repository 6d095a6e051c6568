from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from builder import views
from builder.webhooks import webhook_receive
from engine.health import healthz, readyz

urlpatterns = [
    path("", views.workflow_list_page, name="workflow-list-page"),
    path("workflows/<int:workflow_id>/", views.workflow_editor_page, name="workflow-editor-page"),
    path("secrets/", views.secrets_page, name="secrets-page"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("hooks/<str:token>", webhook_receive, name="webhook"),
    path("api/", include("builder.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Pages that name no icon (the admin, the API docs) still get one where browsers look.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path no route matches: JSON under /api/ (what API clients parse, and what the
    schema declares), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


handler404 = not_found
