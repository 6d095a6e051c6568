"""The map-reduce template (builder/gallery/map-reduce.json): reviews classified in parallel
by an Agent (map), reduced by the loop's aggregations to one insights object (reduce)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from builder import gallery
from builder.services import run_create
from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from engine.models import Run
from engine.runner import execute_run
from simulator import answers
from tests.builder.asgi_kit import post
from tests.builder.holds import held_until_in_flight

SLUG = "map-reduce"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])
TOPICS = ("pricing", "support", "usability", "reliability", "features")


def reviews(n: int) -> dict[str, Any]:
    return {
        "reviews": [
            {"id": f"r{i:05d}", "product": f"P{i % 7}", "text": f"Review number {i:05d}."}
            for i in range(n)
        ]
    }


def run_template(owner: Any, body: Any) -> Run:
    workflow = gallery.template_instantiate(owner=owner, slug=SLUG)
    run, _ = run_create(workflow=workflow, input=body)
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def expected(body: dict[str, Any], received: list[dict[str, Any]]) -> dict[str, Any]:
    """The reduce, recomputed in Python from the answers the simulator gave each review."""
    by_prompt = {
        e["json"]["messages"][-1]["content"]: json.loads(
            answers.chat_completion(e["json"])["choices"][0]["message"]["content"]
        )
        for e in received
        if e["endpoint"] == "openai"
    }
    rows = [
        (r, by_prompt[f"Product: {r['product']}\nReview: {r['text']}"]) for r in body["reviews"]
    ]
    ratings = [c["rating"] for _, c in rows]
    ranked = sorted(rows, key=lambda pair: pair[1]["rating"])[:3]
    return {
        "reviews": len(rows),
        "classified": len(rows),
        "failed": 0,
        "average_rating": sum(ratings) / len(ratings),
        "by_sentiment": {
            s: sum(c["sentiment"] == s for _, c in rows)
            for s in ("positive", "neutral", "negative")
        },
        "by_topic": {t: sum(c["topic"] == t for _, c in rows) for t in TOPICS},
        "most_negative": [
            {"id": r["id"], "product": r["product"], "rating": c["rating"], "topic": c["topic"]}
            for r, c in ranked
        ],
    }


def test_the_template_is_valid_and_reduces_with_aggregations() -> None:
    template = gallery.template_get(SLUG)
    result = validate(parse_graph(template["graph"]), REGISTRY, [])
    assert (result.errors, result.warnings) == ([], [])
    loop = next(b for b in template["graph"]["blocks"] if b["name"] == "map")
    assert set(loop["config"]["aggregations"]) >= {"by_sentiment", "by_topic", "average_rating"}
    assert template["pattern"].startswith("Parallel map + reduce")


@REAL_RUN
def test_the_sample_answers_one_reduced_object_to_a_waiting_call(user: Any, providers: Any) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    workflow = gallery.template_instantiate(owner=user, slug=SLUG)
    response = post(f"/hooks/{workflow.webhook.token}", sample, {"Prefer": "wait=20"})
    assert response["status"] == 200, response
    assert response["json"] == expected(sample, providers.control.stats()["received"])


@REAL_RUN
def test_1000_reviews_map_in_parallel_and_reduce_to_one_small_output(
    user: Any, providers: Any
) -> None:
    providers.control.configure(latency_ms={"openai": 100})
    body = reviews(1000)
    with held_until_in_flight(providers, "openai", 20):  # the cap, not a loaded CPU's pace
        run = run_template(user, body)
    assert run.status == "succeeded", run.error
    stats = providers.control.stats()
    assert stats["requests"]["openai"] == 1000
    assert stats["peak_in_flight"]["openai"] == 20  # the map ran at its cap
    output = run.outputs["response"]["body"]
    assert output == expected(body, stats["received"])
    assert len(json.dumps(output)) < 1000  # one small answer, whatever the batch
