"""The HTML pages: the workflow list and the editor (one shell for the React bundle each),
the login and the logout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from builder import services
from builder.views import bundle_built

pytestmark = pytest.mark.django_db

GRAPH = {
    "blocks": [{"id": "webhook", "type": "webhook", "name": "webhook", "config": {}}],
    "edges": [],
}


@pytest.fixture
def built(tmp_path: Path, settings: Any) -> Path:
    """A stand-in for the frontend build, so these tests neither need nor touch static/dist."""
    assets = tmp_path / "dist" / "assets"
    assets.mkdir(parents=True)
    (assets / "main.js").write_text("export {};\n")
    (assets / "main.css").write_text("body {}\n")
    settings.STATICFILES_DIRS = [tmp_path]
    return tmp_path


@pytest.fixture
def not_built(tmp_path: Path, settings: Any) -> Path:
    settings.STATICFILES_DIRS = [tmp_path]
    return tmp_path


@pytest.fixture
def workflow(user: Any) -> Any:
    return services.workflow_create(owner=user, name="Mine", graph=GRAPH)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/", "/workflows/{id}/", "/secrets/"])
def test_anonymous_users_are_sent_to_the_login_page(
    client: Client, workflow: Any, path: str
) -> None:
    path = path.format(id=workflow.pk)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_the_editor_page_mounts_the_bundle_on_the_owners_workflow(
    built: Path, user: Any, workflow: Any
) -> None:
    assert bundle_built()
    response = signed_in(user).get(f"/workflows/{workflow.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    root = f'<div id="root" data-page="editor" data-workflow-id="{workflow.pk}"'
    assert f'{root} data-username="{user.get_username()}"></div>' in html
    assert '<script type="module" src="/static/dist/assets/main.js"></script>' in html
    assert '<link rel="stylesheet" href="/static/dist/assets/main.css">' in html
    assert 'href="/admin/"' in html
    assert "not built" not in html
    assert response.cookies["csrftoken"].value  # the SPA sends it back as X-CSRFToken


def test_the_list_page_mounts_the_bundle(built: Path, user: Any) -> None:
    response = signed_in(user).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        f'<div id="root" data-page="list" data-workflow-id="" data-username="{user.get_username()}"></div>'
        in html
    )
    assert "/static/dist/assets/main.js" in html
    assert response.cookies["csrftoken"].value


def test_the_secrets_page_mounts_the_bundle_and_names_no_value(built: Path, user: Any) -> None:
    services.secret_set(owner=user, name="CRM_TOKEN", value="crm-page-value-4e1f")
    response = signed_in(user).get("/secrets/")
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        f'<div id="root" data-page="secrets" data-workflow-id="" data-username="{user.get_username()}"></div>'
        in html
    )
    assert 'href="/secrets/"' in html
    assert "crm-page-value-4e1f" not in html
    assert response.cookies["csrftoken"].value


def test_another_users_workflow_is_not_found(built: Path, other_user: Any, workflow: Any) -> None:
    client = signed_in(other_user)
    assert client.get(f"/workflows/{workflow.pk}/").status_code == 404
    assert client.get("/workflows/999999/").status_code == 404


def test_without_a_build_the_pages_say_how_to_build_it(
    not_built: Path, user: Any, workflow: Any
) -> None:
    assert not bundle_built()
    client = signed_in(user)
    for path in ["/", f"/workflows/{workflow.pk}/"]:
        response = client.get(path)
        assert response.status_code == 200
        html = response.content.decode()
        assert "The editor is not built: run <code>make setup</code>" in html
        assert 'id="root"' not in html and "main.js" not in html
        assert 'href="/admin/"' in html


def test_logging_in_with_a_password_leads_to_the_workflow_list(client: Client, user: Any) -> None:
    page = client.get("/login/")
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode() and 'name="password"' in page.content.decode()

    refused = client.post("/login/", {"username": "owner", "password": "wrong"})
    assert refused.status_code == 200 and 'role="alert"' in refused.content.decode()
    assert "_auth_user_id" not in client.session

    response = client.post("/login/", {"username": "owner", "password": "owner-password"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.get("/login/")["Location"] == "/"  # already signed in


def test_logging_in_returns_to_the_page_asked_for(client: Client, user: Any, workflow: Any) -> None:
    target = f"/workflows/{workflow.pk}/"
    response = client.post(
        f"/login/?next={target}",
        {"username": "owner", "password": "owner-password", "next": target},
    )
    assert response.status_code == 302 and response["Location"] == target


def test_logging_out_takes_a_post(user: Any) -> None:
    client = signed_in(user)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/")["Location"] == "/login/?next=/"
