"""The image-batch template (builder/gallery/image-batch.json): each image URL goes to an
Agent as an image input (an OpenAI-style content part), and its caption, tags and quality are
stored in the owner's `image_descriptions` table (PostgreSQL schema or SQLite file)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from builder import gallery
from builder.services import run_create
from engine.blocks import REGISTRY
from engine.core.graph import parse_graph
from engine.core.validation import validate
from engine.models import Run
from engine.runner import execute_run
from leads import owner_data
from leads.tables import IMAGES
from simulator import answers
from tests.builder.asgi_kit import post
from tests.leads.rows import drop_all_owner_data

SLUG = "image-batch"
REAL_RUN = pytest.mark.django_db(transaction=True, databases=["default", "data"])


@pytest.fixture(params=["postgresql", "sqlite"])
def owners(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> owner_data.OwnerStore:
    if request.param == "postgresql":
        drop_all_owner_data()
        return owner_data.store()
    store = owner_data.SqliteOwners(tmp_path / "owners")
    monkeypatch.setattr(owner_data, "store", lambda: store)
    return store


def run_template(owner: Any, body: Any) -> Run:
    workflow = gallery.template_instantiate(owner=owner, slug=SLUG)
    run, _ = run_create(workflow=workflow, input=body)
    asyncio.run(execute_run(run.pk))
    run.refresh_from_db()
    return run


def descriptions(received: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the simulator answered for each image URL, from the image part each call sent."""
    found = {}
    for entry in received:
        if entry["endpoint"] != "openai":
            continue
        [url] = answers.image_urls(entry["json"])
        content = answers.chat_completion(entry["json"])["choices"][0]["message"]["content"]
        found[url] = json.loads(content)
    return found


def test_the_template_is_valid_and_sends_each_url_as_an_image() -> None:
    template = gallery.template_get(SLUG)
    result = validate(parse_graph(template["graph"]), REGISTRY, [])
    assert (result.errors, result.warnings) == ([], [])
    describe = next(b for b in template["graph"]["blocks"] if b["name"] == "describe")
    assert describe["config"]["images"] == "<image.url>"


@REAL_RUN
def test_the_sample_stores_one_description_per_image(
    owners: owner_data.OwnerStore, user: Any, providers: Any
) -> None:
    sample = gallery.template_get(SLUG)["sample"]
    run = run_template(user, sample)
    assert run.status == "succeeded", run.error
    received = providers.control.stats()["received"]
    for entry in received:
        [text, image] = entry["json"]["messages"][-1]["content"]
        assert text["type"] == "text" and text["text"].startswith("Image img-")
        assert image["type"] == "image_url" and image["image_url"]["detail"] == "low"
    described = descriptions(received)
    rows = owners.rows([user.pk], "", 0, 1000, IMAGES)[0]
    assert [r["image_id"] for r in rows] == [i["id"] for i in sample["images"]]
    for image, row in zip(sample["images"], rows, strict=True):
        expected = described[image["url"]]
        assert (row["batch"], row["url"], row["caption"], row["quality"]) == (
            sample["batch"],
            image["url"],
            expected["caption"],
            expected["quality"],
        )
        assert json.loads(row["tags"]) == expected["tags"]
    output = run.outputs["response"]["body"]
    assert output["described"] == len(sample["images"])
    assert sum(output["by_quality"].values()) == len(sample["images"])


@REAL_RUN
def test_a_refused_image_fails_alone_and_a_bad_url_is_refused_at_the_door(
    user: Any, providers: Any
) -> None:
    body = {
        "batch": "b1",
        "images": [{"id": f"i{n:03d}", "url": f"https://img.example/{n}.jpg"} for n in range(100)],
    }
    providers.control.configure(
        failures=[{"endpoint": "openai", "match": {"prompt_contains": "Image i007"}, "status": 400}]
    )
    run = run_template(user, body)
    assert run.status == "partially_succeeded"
    output = run.outputs["response"]["body"]
    assert (output["described"], output["failed"]["count"]) == (99, 1)
    assert output["failed"]["examples"][0]["image"] == "i007"
    assert owner_data.store().rows([user.pk], "", 0, 0, IMAGES)[1] == 99

    workflow = gallery.template_instantiate(owner=user, slug=SLUG)
    bad = {"batch": "b2", "images": [{"id": "x", "url": "file:///etc/passwd"}]}
    refused = post(f"/hooks/{workflow.webhook.token}", bad)
    assert refused["status"] == 422, refused
