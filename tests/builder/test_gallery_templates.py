"""Every shipped template: valid with no warnings, a description and a pattern, a sample its
webhook accepts, and a picture of its graph for the gallery."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from builder import gallery
from engine.blocks import REGISTRY
from engine.blocks.webhook import body_errors
from engine.core.expressions import search
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
def test_each_field_a_loop_reads_of_a_posted_item_is_required_or_has_a_default(
    slug: str,
) -> None:
    """A body the webhook accepts must not fail its items: a lead without a title (optional
    in the schema) failed at `<lead.title>` in every item."""
    graph = gallery.template_get(slug)["graph"]
    [webhook] = [b for b in graph["blocks"] if b["type"] == "webhook"]
    texts = json.dumps([b["config"] for b in graph["blocks"]])
    for loop in (b for b in graph["blocks"] if b["type"] == "loop"):
        posted = re.fullmatch(r"<webhook\.body\.([A-Za-z0-9_.]+)>", loop["config"]["items"])
        if posted is None:
            continue  # an inner loop over its outer item's list
        schema = webhook["config"]["body_schema"]
        for name in posted.group(1).split("."):
            schema = schema["properties"][name]
        item = schema["items"]
        variable = loop["config"].get("variable", "item")
        read = set(re.findall(rf"<{variable}\.([A-Za-z0-9_]+)", texts))
        assert read, (slug, loop["id"])
        optional = {
            name
            for name in read
            if name not in item.get("required", [])
            and "default" not in item["properties"].get(name, {})
        }
        assert optional == set(), (slug, loop["id"])


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


def test_the_lead_templates_failure_list_names_the_first_100_and_says_how_many_in_all() -> None:
    """A 40,000-character Slack text listed 239 of 1,000 failed leads, cut mid-line."""
    graph = gallery.template_get("parallel-lead-enrichment")["graph"]
    [loop] = [b for b in graph["blocks"] if b["id"] == "loop"]
    expression = loop["config"]["aggregations"]["failed_leads"]

    def failed(n: int) -> dict[str, Any]:
        rows = [
            {"index": i, "item": {"id": f"L{i}", "name": f"Lead {i}"}, "block": "b", "error": "e"}
            for i in range(n)
        ]
        return {"failed": rows}

    few = search(expression, failed(2), max_bytes=10**6)
    assert few == "• Lead 0 (L0) at b: e\n• Lead 1 (L1) at b: e"
    many = search(expression, failed(250), max_bytes=10**6).split("\n")
    assert len(many) == 101 and many[99] == "• Lead 99 (L99) at b: e"
    assert many[100] == (
        "… 250 failed in all; the first 100 are listed, the run's Failed items have every one"
    )
    # A name, id or error with line breaks stays on its lead's line: none forges an entry.
    forged = failed(1)
    forged["failed"][0]["item"] = {"id": "L\r\n0", "name": "Bob\n• Alice (A1) at b: e"}
    forged["failed"][0]["error"] = "HTTP 500:\n\tupstream down"
    assert search(expression, forged, max_bytes=10**6) == (
        "• Bob • Alice (A1) at b: e (L 0) at b: HTTP 500: upstream down"
    )
