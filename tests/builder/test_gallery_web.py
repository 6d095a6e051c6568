"""The web-page summariser template (builder/gallery/web-summariser.json): each page fetched
by an HTTP block, then summarised by an Agent reading its HTML, pages in parallel; a page
that cannot be fetched fails alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from builder import gallery
from simulator import answers
from tests.builder.asgi_kit import post

SLUG = "web-summariser"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])


@pytest.fixture
def pages(providers: Any, settings: Any) -> Any:
    """The template's host goes to the test simulator, as sandbox mode sends it to its own."""
    settings.KLYNTOS_HOST_OVERRIDES += f",api.sources.example={providers.base_url}"
    return providers


def call(user: Any, body: Any) -> dict[str, Any]:
    workflow = gallery.template_instantiate(owner=user, slug=SLUG)
    response = post(f"/hooks/{workflow.webhook.token}", body, {"Prefer": "wait=30"})
    assert response["status"] == 200, response
    return dict(response["json"])


def slug_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


@REAL_RUN
def test_the_sample_pages_are_fetched_and_summarised_in_order(user: Any, pages: Any) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    answered = call(user, sample)
    llm = [e for e in pages.control.stats()["received"] if e["endpoint"] == "openai"]
    by_url = {}
    for entry in llm:
        prompt = entry["json"]["messages"][-1]["content"]
        url = prompt.split("\n", 1)[0].removeprefix("URL: ")
        assert prompt.endswith(answers.page(slug_of(url)))  # the Agent read the fetched HTML
        by_url[url] = json.loads(
            answers.chat_completion(entry["json"])["choices"][0]["message"]["content"]
        )
    urls = [p["url"] for p in sample["pages"]]
    assert answered["pages"] == answered["summarised"] == len(urls)
    assert answered["summaries"] == [{"url": url, **by_url[url]} for url in urls]
    assert pages.control.stats()["requests"]["sources"] == len(urls)


@REAL_RUN
def test_a_page_that_cannot_be_fetched_fails_alone(user: Any, pages: Any) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    missing = slug_of(sample["pages"][2]["url"])
    pages.control.configure(
        failures=[{"endpoint": "sources", "match": {"page": missing}, "status": 404}]
    )
    answered = call(user, sample)
    assert answered["summarised"] == len(sample["pages"]) - 1
    [example] = answered["failures"]["examples"]
    assert example["url"].endswith(missing) and example["step"] == "fetch"
    assert "404" in example["error"]
