"""The Django admin of the builder's models."""

from __future__ import annotations

from typing import Any

import pytest

from builder import services
from builder.models import Secret


@pytest.mark.django_db
def test_the_secret_admin_lists_and_deletes_but_never_adds_or_edits(
    client: Any, django_user_model: Any
) -> None:
    admin_user = django_user_model.objects.create_superuser("root", password="root-password")
    secret = services.secret_set(owner=admin_user, name="API_KEY", value="s3cret-value")
    client.force_login(admin_user)
    listing = client.get("/admin/builder/secret/")
    assert listing.status_code == 200 and b"API_KEY" in listing.content
    assert b"/admin/builder/secret/add/" not in listing.content
    assert client.get("/admin/builder/secret/add/").status_code == 403
    # An add form would save an empty ciphertext; a change form could do the same.
    assert client.post("/admin/builder/secret/add/", {"name": "X"}).status_code == 403
    change = f"/admin/builder/secret/{secret.pk}/change/"
    assert client.post(change, {"name": "RENAMED"}).status_code == 403
    assert Secret.objects.get(pk=secret.pk).value == "s3cret-value"
    deleted = client.post(f"/admin/builder/secret/{secret.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not Secret.objects.filter(pk=secret.pk).exists()
