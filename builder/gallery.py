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
# The gallery's picture of a graph: a block's box, and a loop's when its style gives none.
BLOCK_BOX = (180, 56)
LOOP_BOX = (400, 240)


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


def template_preview(graph: dict[str, Any]) -> dict[str, Any]:
    """A picture of a template's graph for the gallery: each block's box where the canvas
    puts it (a loop's children are placed inside it), and the edges between blocks (a loop's
    edge to its own body is the box around them, so it is left out)."""
    by_id = {b["id"]: b for b in graph["blocks"]}

    def origin(block: dict[str, Any]) -> tuple[float, float]:
        position = block.get("position") or {}
        x, y = float(position.get("x", 0)), float(position.get("y", 0))
        parent = by_id.get(block.get("parent") or "")
        if parent is None:
            return x, y
        px, py = origin(parent)
        return px + x, py + y

    boxes = []
    for block in graph["blocks"]:
        x, y = origin(block)
        style = block.get("style") or {}
        default = LOOP_BOX if block["type"] == "loop" else BLOCK_BOX
        width, height = style.get("width", default[0]), style.get("height", default[1])
        boxes.append(
            {"id": block["id"], "name": block["name"], "type": block["type"]}
            | {"x": x, "y": y, "width": float(width), "height": float(height)}
        )
    edges = [
        {"source": e["source"], "target": e["target"]}
        for e in graph["edges"]
        if e.get("handle") != "body"
    ]
    return {
        "width": max((b["x"] + b["width"] for b in boxes), default=0),
        "height": max((b["y"] + b["height"] for b in boxes), default=0),
        "blocks": boxes,
        "edges": edges,
    }
