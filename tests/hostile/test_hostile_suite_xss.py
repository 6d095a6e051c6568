"""XSS as text: whatever a user (or an upstream, or a webhook sender) writes comes back from
the API verbatim, as JSON that browsers will not sniff as HTML, and every Django page that
shows it (editor shell, admin lists and forms) escapes it. The editor's own escaping is
tested with the frontend."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from builder import services
from builder.models import Workflow
from tests.hostile.conftest import REAL_RUN, Upstream, serve

PAYLOAD = '<script>alert("kx")</script><img src=x onerror=alert(1)>"\'&'
MARKERS = ["<script>alert(", "<img src=x onerror"]


def escaped(page: str) -> None:
    for marker in MARKERS:
        assert marker not in page, f"unescaped {marker!r} in the page"
    assert html.escape(PAYLOAD) in page or html.escape(PAYLOAD, quote=False) in page


def graph_with_texts(upstream: str) -> dict[str, Any]:
    return {
        "blocks": [
            {"id": "hook", "type": "webhook", "name": "hook", "config": {}},
            {
                "id": "each",
                "type": "loop",
                "name": "each",
                "config": {"items": "<hook.body.leads>", "variable": "lead"},
            },
            {
                "id": "call",
                "type": "http",
                "name": "call",
                "parent": "each",
                "config": {"url": f"{upstream}/lead", "query": {"n": "<lead.name>"}},
            },
        ],
        "edges": [{"source": "hook", "target": "each"}],
    }


@pytest.fixture
def html_upstream(settings: Any) -> Iterator[Upstream]:
    """Answers 400 with an HTML body (the step's error carries it), except for lead "ok"."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("n") == "ok":
            return web.json_response({"ok": True})
        return web.Response(status=400, text=f"bad lead {PAYLOAD}", content_type="text/html")

    for server in serve(handler):
        settings.KLYNTOS_TRUSTED_HOSTS = [server.hostport]
        yield server


@pytest.fixture
def admin_client(django_user_model: Any) -> Client:
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-123")
    client = Client()
    client.force_login(admin)
    return client


@pytest.mark.django_db
def test_the_api_returns_user_text_verbatim(api: APIClient) -> None:
    graph = graph_with_texts("http://example.invalid")
    graph["blocks"][2]["name"] = PAYLOAD  # an invalid block name: reported, not altered
    created = api.post(
        "/api/workflows/",
        {"name": PAYLOAD, "description": PAYLOAD, "graph": graph},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == PAYLOAD and body["description"] == PAYLOAD
    assert body["graph"]["blocks"][2]["name"] == PAYLOAD
    assert created["Content-Type"] == "application/json"
    assert created["X-Content-Type-Options"] == "nosniff"
    listed = api.get("/api/workflows/")
    assert listed.json()[0]["name"] == PAYLOAD
    assert "&lt;script" not in listed.content.decode()  # no double escaping either


@REAL_RUN
def test_item_data_and_upstream_errors_come_back_verbatim_and_admin_escapes_them(
    api: APIClient, admin_client: Client, html_upstream: Upstream, finish_run: Any
) -> None:
    created = api.post(
        "/api/workflows/",
        {"name": PAYLOAD, "graph": graph_with_texts(html_upstream.base_url)},
        format="json",
    ).json()
    started = api.post(
        f"/api/workflows/{created['id']}/runs/",
        {"input": {"leads": [{"name": PAYLOAD}, {"name": "ok"}]}},
        format="json",
    )
    assert started.status_code == 201, started.content
    run = finish_run(started.json()["id"])
    assert run.status == "partially_succeeded", run.error
    items = api.get(f"/api/runs/{run.pk}/items/").json()["results"]
    (item,) = [i for i in items if i["loop_block"] == "each" and i["status"] == "failed"]
    assert item["data"] == {"name": PAYLOAD}
    assert item["error"].endswith(f"bad lead {PAYLOAD}")
    # Pages list items without steps; the item's detail (`key`) has them.
    item = api.get(f"/api/runs/{run.pk}/items/", {"key": item["key"]}).json()["results"][0]
    (step,) = item["steps"]
    assert step["error"].endswith(f"bad lead {PAYLOAD}")
    detail = api.get(f"/api/runs/{run.pk}/")
    assert detail["Content-Type"] == "application/json"
    # A loop's stored output counts its failures; the failed item is its own row (above).
    assert detail.json()["outputs"]["each"]["failed"] == {"$omitted": True, "count": 1}

    item_pk = run.items.get(loop_block="each", status="failed").pk
    step_pk = run.steps.get(block_id="call", status="failed").pk
    # (page, whether it shows the text at all: the lists of rows show keys and statuses)
    for url, shows in [
        ("/admin/builder/workflow/", True),
        (f"/admin/builder/workflow/{created['id']}/change/", True),
        ("/admin/engine/run/", True),
        ("/admin/engine/itemrun/", False),
        ("/admin/engine/steprun/", False),
        (f"/admin/engine/run/{run.pk}/change/", True),
        (f"/admin/engine/itemrun/{item_pk}/change/", True),
        (f"/admin/engine/steprun/{step_pk}/change/", True),
    ]:
        page = admin_client.get(url)
        assert page.status_code == 200, url
        text = page.content.decode()
        for marker in MARKERS:
            assert marker not in text, f"{url}: unescaped {marker!r}"
        assert ("&lt;script&gt;" in text) is shows, url


@pytest.mark.django_db
def test_the_editor_page_escapes_the_workflow_name(user: Any) -> None:
    workflow = services.workflow_create(owner=user, name=PAYLOAD, graph={"blocks": [], "edges": []})
    client = Client()
    client.force_login(user)
    page = client.get(f"/workflows/{workflow.pk}/")
    assert page.status_code == 200
    escaped(page.content.decode())


@pytest.mark.django_db
def test_a_username_with_markup_is_escaped_in_the_page_header(django_user_model: Any) -> None:
    person = django_user_model.objects.create_user(PAYLOAD[:150], password="pw-123456")
    client = Client()
    client.force_login(person)
    page = client.get("/").content.decode()
    for marker in MARKERS:
        assert marker not in page


@pytest.mark.django_db(transaction=True, databases=["default", "data"])
def test_enriched_rows_from_webhook_data_are_escaped_in_the_admin(
    admin_client: Client, user: Any
) -> None:
    """A lead's name written by a workflow lands in the admin's list of enriched leads."""
    from leads import owner_data
    from tests.leads.rows import drop_all_owner_data

    drop_all_owner_data()  # earlier tests' rows would push this one off the first page
    owners = owner_data.store()
    owners.provision(user.pk)
    with connections["data"].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {owner_data.schema_name(user.pk)}.enriched_leads (lead_id, name,"  # noqa: S608 - an integer id
            " company, title, email, budget_estimate, urgency_level, linkedin_url,"
            " qualification_score, enriched_at) VALUES ('x1', %s, %s, '', '', '', '', '', 1, now())",
            [PAYLOAD, PAYLOAD],
        )
    page = admin_client.get("/admin/leads/enrichedlead/")
    assert page.status_code == 200
    escaped(page.content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url",
    ["javascript:alert(1)", "//evil.example/", "https://evil.example/", "\\\\evil.example"],
)
def test_login_never_redirects_off_site(user: Any, next_url: str) -> None:
    client = Client()
    response = client.post(
        f"/login/?next={next_url}", {"username": "owner", "password": "owner-password"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.django_db
def test_the_webhook_echoes_no_markup_from_a_refused_body(client: Client, user: Any) -> None:
    workflow = services.workflow_create(
        owner=user,
        name="w",
        graph={
            "blocks": [{"id": "hook", "type": "webhook", "name": "hook", "config": {}}],
            "edges": [],
        },
    )
    workflow = Workflow.objects.select_related("webhook").get(pk=workflow.pk)
    raw = ('{"' + PAYLOAD.replace('"', "'") + '\\u0000": 1}').encode()
    response = client.post(
        f"/hooks/{workflow.webhook.token}", data=raw, content_type="application/json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    for marker in MARKERS:
        assert marker not in response.content.decode()
