"""IDOR: every route of the URL conf, the websocket routes and the admin's models are listed
in a table saying how each is scoped; the tests check the table against the real URL conf,
so a route added later without a line here fails the suite, then hit every owner-scoped
route with every method its view implements, as another user: 404, and nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from builder import services
from builder.models import Secret, Webhook, Workflow, WorkflowVersion
from engine.models import ItemRun, Run, StepRun
from klyntos.routing import websocket_urlpatterns

# How each route is scoped.
PUBLIC = "public"  # no user data: login, logout, the API schema and its docs page, the icon
TOKEN = "token"  # the unguessable webhook token is the credential
PAGE = "page"  # signed-in users only; shows no object
OWNED_PAGE = "owned-page"  # a page about one of the user's workflows
OWN_LIST = "own-list"  # lists (and creates) the user's own objects only
CATALOGUE = "catalogue"  # signed-in users only; the same for everyone
CREATES_OWN = "creates-own"  # creates an object owned by the caller
OWNED_WORKFLOW = "owned-workflow"  # one of the user's workflows: 404 for anyone else
OWNED_RUN = "owned-run"  # one of the user's runs: 404 for anyone else
OWN_BY_NAME = "own-by-name"  # looked up by name among the caller's own objects only

ROUTES: dict[str, str] = {
    "": PAGE,
    "workflows/<int:workflow_id>/": OWNED_PAGE,
    "secrets/": PAGE,
    "login/": PUBLIC,
    "logout/": PUBLIC,
    "hooks/<str:token>": TOKEN,
    "api/workflows/": OWN_LIST,
    "api/workflows/<int:pk>/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/validate/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/duplicate/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/export/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/runs/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/publish/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/versions/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/versions/diff/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/versions/<int:number>/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/versions/<int:number>/restore/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/runs/last/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/blocks/<str:block_id>/test/": OWNED_WORKFLOW,
    "api/workflows/<int:pk>/webhook/secret/": OWNED_WORKFLOW,
    "api/runs/<str:pk>/": OWNED_RUN,
    "api/runs/<str:pk>/items/": OWNED_RUN,
    "api/runs/<str:pk>/cancel/": OWNED_RUN,
    "api/runs/<str:pk>/retry-failed/": OWNED_RUN,
    "api/runs/<str:pk>/resume-provider/": OWNED_RUN,
    "api/runs/<str:pk>/timeline/": OWNED_RUN,
    "api/runs/<str:pk>/summary/": OWNED_RUN,
    "api/blocks/": CATALOGUE,
    "api/templates/": CATALOGUE,
    "api/templates/<slug:slug>/instantiate/": CREATES_OWN,
    "api/secrets/": OWN_LIST,
    "api/secrets/<str:name>/": OWN_BY_NAME,
    "api/schedules/preview/": CATALOGUE,
    "api/schema/": PUBLIC,
    "healthz": PUBLIC,  # a load balancer's questions: nobody's data
    "readyz": PUBLIC,
    "api/docs/": PUBLIC,
    "favicon.ico": PUBLIC,
}
WEBSOCKET_ROUTES: dict[str, str] = {
    "ws/runs/<str:run_id>/": OWNED_RUN,
    "ws/workflows/<str:workflow_id>/": OWNED_WORKFLOW,
}
# Registered admin models: staff only (the admin site's own login).
ADMIN_MODELS = {
    "auth.user",
    "auth.group",
    "authtoken.tokenproxy",
    "builder.workflow",
    "builder.workflowversion",
    "builder.webhook",
    "builder.secret",
    "engine.run",
    "engine.itemrun",
    "engine.steprun",
    "leads.enrichedlead",
    "leads.personalisedemail",
    "leads.imagedescription",
}
if settings.ON_POSTGRESQL:  # the job queue's admin (KLYNTOS_EXECUTOR=workers), staff only
    ADMIN_MODELS.add("procrastinate.procrastinatejob")


def url_conf_routes() -> Iterator[tuple[str, URLPattern]]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if getattr(pattern, "app_name", None) == "admin":
                    continue  # the admin site: classified per model below
                yield from walk(pattern.url_patterns, route)
            else:
                yield route, pattern

    yield from walk(get_resolver().url_patterns, "")


def view_methods(pattern: URLPattern) -> list[str]:
    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if view is None:
        return ["get", "post"]  # function views: try both
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]


# --- the table is the URL conf ---------------------------------------------------------------


def test_every_route_is_classified() -> None:
    routes = {route for route, _ in url_conf_routes()}
    unclassified = routes - ROUTES.keys()
    assert not unclassified, f"classify these routes in ROUTES: {sorted(unclassified)}"
    gone = ROUTES.keys() - routes
    assert not gone, f"these routes no longer exist; drop them from ROUTES: {sorted(gone)}"


def test_every_websocket_route_is_classified() -> None:
    assert {str(p.pattern) for p in websocket_urlpatterns} == WEBSOCKET_ROUTES.keys()


def test_every_admin_model_is_classified() -> None:
    assert {m._meta.label_lower for m in admin.site._registry} == ADMIN_MODELS


# --- owner-scoped routes, every method, as another user ------------------------------------

OWNED = [
    pytest.param(route, method, id=f"{method.upper()} {route}")
    for route, pattern in url_conf_routes()
    if ROUTES.get(route) in (OWNED_WORKFLOW, OWNED_RUN)
    for method in view_methods(pattern)
]


def state() -> list[Any]:
    """Everything another user's request could change."""
    return [
        list(Workflow.objects.order_by("pk").values()),
        list(WorkflowVersion.objects.order_by("pk").values()),
        list(Webhook.objects.order_by("pk").values()),
        list(Secret.objects.order_by("pk").values()),
        list(Run.objects.order_by("pk").values()),
        list(ItemRun.objects.order_by("pk").values()),
        list(StepRun.objects.order_by("pk").values()),
    ]


def fill(route: str, workflow: Any, run: Any) -> str:
    return "/" + (
        route.replace("<int:pk>", str(workflow.pk))
        .replace("<int:workflow_id>", str(workflow.pk))
        .replace("<str:pk>", str(run.pk))
        .replace("<str:name>", "VICTIM_KEY")
        .replace("<int:number>", "1")  # a version the victim's workflow has
        .replace("<str:block_id>", "agent_analysis")  # a block the victim's workflow has
    )


# A body every write view would accept from its owner, so a 404 can only be the scoping.
PLAUSIBLE = {
    "name": "taken over",
    "graph": {"blocks": [], "edges": []},
    "base_version": 1,
    "input": {"leads": []},
}


@pytest.fixture
def victim(user: Any, lead_workflow: Any) -> tuple[Any, Any]:
    services.secret_set(owner=user, name="VICTIM_KEY", value="victim-secret-value-1")
    services.webhook_rotate_secret(webhook=lead_workflow.webhook)
    run, _ = services.run_create(workflow=lead_workflow, input={"leads": []})
    ItemRun.objects.create(run=run, key="0", loop_block="loop", index=0, status="failed")
    return lead_workflow, run


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method"), OWNED)
def test_another_users_object_does_not_exist_for_them(
    other_api: APIClient, api: APIClient, victim: tuple[Any, Any], route: str, method: str
) -> None:
    workflow, run = victim
    url = fill(route, workflow, run)
    before = state()
    other_api.raise_request_exception = False
    response = getattr(other_api, method)(url, PLAUSIBLE, format="json")
    assert response.status_code == 404, f"{method.upper()} {url}: {response.status_code}"
    assert "victim-secret-value-1" not in response.content.decode()
    assert state() == before, f"{method.upper()} {url} changed something behind its 404"
    # The same object exists for its owner: the 404 was the scoping.
    owner_get = {
        OWNED_WORKFLOW: f"/api/workflows/{workflow.pk}/",
        OWNED_RUN: f"/api/runs/{run.pk}/",
    }
    assert api.get(owner_get[ROUTES[route]]).status_code == 200


@pytest.mark.django_db
def test_another_users_editor_page_is_404(other_user: Any, victim: tuple[Any, Any]) -> None:
    workflow, _ = victim
    client = Client()
    client.force_login(other_user)
    assert client.get(f"/workflows/{workflow.pk}/").status_code == 404


@pytest.mark.django_db
def test_lists_show_only_the_callers_objects(
    other_api: APIClient, api: APIClient, victim: tuple[Any, Any]
) -> None:
    workflow, run = victim
    assert other_api.get("/api/workflows/").json() == []
    assert other_api.get("/api/secrets/").json() == []
    assert [w["id"] for w in api.get("/api/workflows/").json()] == [workflow.pk]
    assert [s["name"] for s in api.get("/api/secrets/").json()] == [
        "CLEARBIT_API_KEY",
        "LINKEDIN_API_KEY",
        "VICTIM_KEY",
    ]


@pytest.mark.django_db
def test_a_secret_by_name_is_looked_up_among_the_callers_own(
    other_api: APIClient, api: APIClient, other_user: Any, victim: tuple[Any, Any]
) -> None:
    workflow, _ = victim
    before = state()
    assert other_api.delete("/api/secrets/VICTIM_KEY/").status_code == 404
    assert state() == before
    # The other user's own secret of the same name is theirs alone: deleting it leaves the
    # victim's, and their list never names the victim's workflows.
    assert other_api.post(
        "/api/secrets/", {"name": "VICTIM_KEY", "value": "other-value"}, format="json"
    ).json() == {"name": "VICTIM_KEY"}
    listed = other_api.get("/api/secrets/").json()
    assert listed[0]["workflows"] == []
    assert other_api.delete("/api/secrets/VICTIM_KEY/").status_code == 204
    assert [s["name"] for s in api.get("/api/secrets/").json()][-1] == "VICTIM_KEY"
    used = {s["name"]: s["workflows"] for s in api.get("/api/secrets/").json()}
    assert used["CLEARBIT_API_KEY"] == [
        {"id": workflow.pk, "name": workflow.name, "draft": True, "live": True}
    ]


@pytest.mark.django_db
def test_instantiating_a_template_creates_for_the_caller_only(
    other_api: APIClient, other_user: Any, victim: tuple[Any, Any]
) -> None:
    created = other_api.post(
        "/api/templates/parallel-lead-enrichment/instantiate/", {}, format="json"
    )
    assert created.status_code == 201
    assert Workflow.objects.get(pk=created.json()["id"]).owner == other_user
    assert Workflow.objects.filter(owner=victim[0].owner).count() == 1


# --- anonymous -----------------------------------------------------------------------------

SIGNED_IN = [
    pytest.param(route, method, id=f"{method.upper()} {route}")
    for route, pattern in url_conf_routes()
    if ROUTES.get(route) not in (PUBLIC, TOKEN)
    for method in view_methods(pattern)
]


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method"), SIGNED_IN)
def test_anonymous_callers_are_refused(victim: tuple[Any, Any], route: str, method: str) -> None:
    workflow, run = victim
    url = fill(route, workflow, run).replace("<slug:slug>", "parallel-lead-enrichment")
    before = state()
    response = getattr(APIClient(), method)(url, PLAUSIBLE, format="json")
    if route.startswith("api/"):
        assert response.status_code in (401, 403), f"{method.upper()} {url}"
    else:
        assert response.status_code in (302, 405), f"{method.upper()} {url}"
        if response.status_code == 302:
            assert response["Location"].startswith("/login/")
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(ADMIN_MODELS))
def test_the_admin_is_staff_only(other_user: Any, label: str) -> None:
    client = Client()
    client.force_login(other_user)  # signed in, not staff
    app, model = label.split(".")
    response = client.get(f"/admin/{app}/{model}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
