"""The multi-API aggregation template (builder/gallery/multi-api-aggregation.json): five
HTTP calls in parallel → a transform combining them → a Response block, run from the gallery
on its sample against the simulator's five public data sources, through the real ASGI app."""

from __future__ import annotations

from typing import Any

import pytest

from bench.multi_api import SOURCES, expected_body
from builder import gallery
from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from engine.models import Run
from tests.builder.asgi_kit import post

SLUG = "multi-api-aggregation"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])


@pytest.fixture
def sources(providers: Any, settings: Any) -> Any:
    """The template's host goes to the test simulator, as sandbox mode sends it to its own."""
    settings.KLYNTOS_HOST_OVERRIDES += f",api.sources.example={providers.base_url}"
    return providers


@pytest.fixture
def workflow(user: Any) -> Any:
    return gallery.template_instantiate(owner=user, slug=SLUG)


def hook(workflow: Any) -> str:
    return f"/hooks/{workflow.webhook.token}"


def test_the_template_is_valid_and_its_five_calls_are_independent() -> None:
    template = gallery.template_get(SLUG)
    graph = parse_graph(template["graph"])
    assert validate(graph, REGISTRY, []).errors == []
    predecessors = graph.predecessors(None)
    for name in SOURCES:
        assert predecessors[name] == {"webhook"}  # nothing orders them: they start together
    assert predecessors["combine"] == set(SOURCES)
    assert predecessors["response"] == {"combine"}
    assert template["pattern"] and template["description"]
    assert set(template["sample"]) == {"city", "topic", "symbol", "base", "country"}


@pytest.mark.django_db
def test_the_gallery_lists_it_with_its_pattern_and_sample(api: Any) -> None:
    listed = api.get("/api/templates/").json()
    entry = next(t for t in listed if t["slug"] == SLUG)
    assert entry["pattern"].startswith("Fan-out / fan-in")
    assert entry["sample"] == gallery.template_get(SLUG)["sample"]
    assert "graph" not in entry


@REAL_RUN
def test_the_sample_answers_the_combined_body_in_one_waiting_call(
    sources: Any, workflow: Any
) -> None:
    sources.control.configure(latency_ms={"sources": 50})
    sample = gallery.template_get(SLUG)["sample"]
    response = post(hook(workflow), sample, {"Prefer": "wait=10"})
    assert response["status"] == 200, response
    assert response["json"] == expected_body(sample)
    assert response["headers"]["cache-control"] == "no-store"
    stats = sources.control.stats()
    assert stats["requests"]["sources"] == 5
    # All five were in flight at once: the calls overlapped rather than queued.
    assert stats["peak_in_flight"]["sources"] == 5


@REAL_RUN
def test_a_failing_source_answers_502_naming_it(sources: Any, workflow: Any) -> None:
    sources.control.configure(
        failures=[{"endpoint": "sources", "match": {"source": "stocks"}, "status": 404}]
    )
    response = post(hook(workflow), gallery.template_get(SLUG)["sample"], {"Prefer": "wait=10"})
    assert response["status"] == 502, response
    assert response["json"]["block"] == "stocks"
    assert "returned 404" in response["json"]["error"]


@REAL_RUN
def test_a_short_wait_answers_202_and_the_run_still_completes(
    sources: Any, workflow: Any, finish_run: Any
) -> None:
    # The sources are held until the answer is in: the run cannot end within the wait, however
    # the machine's timing goes (a 3 s latency once answered 200 on a loaded CI machine).
    sources.control.configure(hold=[{"endpoint": "sources"}])
    response = post(hook(workflow), gallery.template_get(SLUG)["sample"], {"Prefer": "wait=0.1"})
    assert response["status"] == 202, response
    sources.control.release()
    run = finish_run(response["json"]["run_id"])
    assert run.status == "succeeded"
    assert Run.objects.get(pk=run.pk).outputs["response"]["body"] == expected_body(
        gallery.template_get(SLUG)["sample"]
    )
