"""Every page has an icon: pages built on base.html name it, and /favicon.ico (where the
admin's and the API docs' pages make browsers look) leads to it instead of a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_favicon_ico_leads_to_the_icon(client: Client) -> None:
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301
    assert answer["Location"] == "/static/favicon.svg"
    icon = client.get(answer["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)  # type: ignore[attr-defined]


def test_pages_name_the_icon(client: Client, user: Any) -> None:
    login = client.get("/login/")
    assert b'<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in login.content
    client.force_login(user)
    assert b'href="/static/favicon.svg"' in client.get("/secrets/").content
