"""Every shipped template: valid with no warnings, a description and a pattern, a sample its
webhook accepts, and a picture of its graph for the gallery."""

from __future__ import annotations

from typing import Any

import pytest

from builder import gallery
from engine.blocks import REGISTRY
from engine.blocks.webhook import body_errors
from engine.core.graph import parse_graph
from engine.core.validation import validate

SLUGS = sorted(gallery.templates())


def test_the_gallery_has_the_briefs_use_cases() -> None:
    assert set(SLUGS) >= {
        "parallel-lead-enrichment",
        "multi-api-aggregation",
        "nested-fan-out",
        "map-reduce",
        "personalised-emails",
        "contract-analysis",
        "image-batch",
        "support-triage",
        "web-summariser",
    }


@pytest.mark.parametrize("slug", SLUGS)
def test_each_template_validates_and_its_sample_fits_its_webhook(slug: str) -> None:
    template = gallery.template_get(slug)
    result = validate(parse_graph(template["graph"]), REGISTRY, template.get("secrets", []))
    assert (result.errors, result.warnings) == ([], [])
    assert template["description"] and template["pattern"]
    [webhook] = [b for b in template["graph"]["blocks"] if b["type"] == "webhook"]
    assert body_errors(webhook["config"].get("body_schema"), template["sample"]) == []


@pytest.mark.parametrize("slug", SLUGS)
def test_each_pictures_loop_children_sit_inside_their_loop(slug: str) -> None:
    graph = gallery.template_get(slug)["graph"]
    preview = gallery.template_preview(graph)
    boxes = {b["id"]: b for b in preview["blocks"]}
    assert set(boxes) == {b["id"] for b in graph["blocks"]}
    for block in graph["blocks"]:
        box = boxes[block["id"]]
        assert box["x"] + box["width"] <= preview["width"]
        assert box["y"] + box["height"] <= preview["height"]
        if block["parent"]:
            loop = boxes[block["parent"]]
            assert loop["x"] <= box["x"] and box["x"] + box["width"] <= loop["x"] + loop["width"]
            assert loop["y"] <= box["y"] and box["y"] + box["height"] <= loop["y"] + loop["height"]
    body_edges = [e for e in graph["edges"] if e.get("handle") == "body"]
    assert len(preview["edges"]) == len(graph["edges"]) - len(body_edges)


@pytest.mark.django_db
def test_the_template_list_carries_each_picture(api: Any) -> None:
    listed = {t["slug"]: t for t in api.get("/api/templates/").json()}
    assert set(listed) == set(SLUGS)
    for slug, entry in listed.items():
        assert entry["preview"] == gallery.template_preview(gallery.template_get(slug)["graph"])
