"""The pages of the editor (workflow list, editor, secrets): Django signs the user in and renders one HTML shell per URL;
the React bundle (frontend/, built into static/dist/) mounts on `#root` and reads which
screen to show from its data attributes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from builder.selectors import workflow_get

BUNDLE_SCRIPT = "dist/assets/main.js"
BUNDLE_STYLE = "dist/assets/main.css"


def bundle_built() -> bool:
    """True when the frontend's build output is where `{% static %}` will look for it."""
    return bool(finders.find(BUNDLE_SCRIPT))


def _app(request: HttpRequest, *, page: str, workflow: Any = None) -> HttpResponse:
    context = {
        "page": page,
        "workflow": workflow,
        "built": bundle_built(),
        "bundle_script": BUNDLE_SCRIPT,
        "bundle_style": BUNDLE_STYLE,
    }
    return render(request, "app.html", context)


@login_required
@ensure_csrf_cookie  # the SPA posts with X-CSRFToken read from the cookie
def workflow_list_page(request: HttpRequest) -> HttpResponse:
    return _app(request, page="list")


@login_required
@ensure_csrf_cookie
def secrets_page(request: HttpRequest) -> HttpResponse:
    return _app(request, page="secrets")


@login_required
@ensure_csrf_cookie
def workflow_editor_page(request: HttpRequest, workflow_id: int) -> HttpResponse:
    return _app(request, page="editor", workflow=workflow_get(request.user, workflow_id))
