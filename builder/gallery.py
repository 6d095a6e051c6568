"""The template gallery: workflows shipped as JSON files under builder/gallery/."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404

from builder.models import Secret, Workflow
from builder.services import secret_set, workflow_create

GALLERY_DIR = Path(__file__).resolve().parent / "gallery"


@lru_cache(maxsize=1)
def templates() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(GALLERY_DIR.glob("*.json")):
        if path.name.endswith(".sample.json"):
            continue
        data = json.loads(path.read_text())
        sample = path.with_name(path.stem + ".sample.json")
        data["sample"] = json.loads(sample.read_text()) if sample.exists() else {}
        found[data["slug"]] = data
    return found


def template_get(slug: str) -> dict[str, Any]:
    try:
        return templates()[slug]
    except KeyError:
        raise Http404(f"no template '{slug}'") from None


def ensure_sandbox_secrets(owner: Any, template: dict[str, Any]) -> None:
    """In sandbox mode the simulator accepts any key: give the user what the template reads."""
    if not settings.KLYNTOS_SANDBOX:
        return
    have = set(Secret.objects.filter(owner=owner).values_list("name", flat=True))
    for secret_name in template.get("secrets", []):
        if secret_name not in have:
            secret_set(owner=owner, name=secret_name, value=f"sandbox-{secret_name.lower()}")


def template_instantiate(*, owner: Any, slug: str, name: str | None = None) -> Workflow:
    template = template_get(slug)
    ensure_sandbox_secrets(owner, template)
    return workflow_create(
        owner=owner,
        name=name or template["name"],
        description=template.get("description", ""),
        graph=template["graph"],
        template_slug=slug,
    )
