"""The agent block's image input: `images` (one URL, a list, or a whole reference to either)
goes with the user prompt as OpenAI-style `image_url` content parts; what is not an image URL
fails the step before the provider is called."""

from __future__ import annotations

from typing import Any

from engine.blocks import REGISTRY
from engine.blocks.agent import MAX_IMAGES
from engine.core.graph import parse_graph
from engine.core.validation import validate
from simulator import answers
from simulator.testing import RunningSimulator
from tests.engine.core.graphkit import block, graph, run_graph

URLS = ["https://images.example/cat.jpg", "https://images.example/dog.png"]


def describe_graph(**config: Any) -> dict[str, Any]:
    return graph(
        [
            block("webhook", "webhook"),
            block("describe", "agent", user_prompt="Describe <webhook.body.title>", **config),
        ],
        [("webhook", "describe")],
    )


async def test_images_from_a_reference_are_sent_as_content_parts(sim: RunningSimulator) -> None:
    outcome, recorder = await run_graph(
        describe_graph(images="<webhook.body.urls>", image_detail="low"),
        {"title": "the pets", "urls": URLS},
        sim=sim,
    )
    assert outcome.status == "succeeded", outcome.error
    [call] = sim.control.stats()["received"]
    assert call["json"]["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe the pets"},
                *({"type": "image_url", "image_url": {"url": u, "detail": "low"}} for u in URLS),
            ],
        }
    ]
    [finished] = recorder.of("step.finished", name="describe")
    content = finished.data["output"]["content"]
    assert content == answers.chat_completion(call["json"])["choices"][0]["message"]["content"]
    for url in URLS:
        assert answers.describe_image(url) in content
    usage = finished.data["output"]["usage"]
    assert usage["prompt_tokens"] == 3 + 2 * answers.IMAGE_TOKENS


async def test_one_url_and_no_images_keep_their_shapes(sim: RunningSimulator) -> None:
    outcome, _ = await run_graph(describe_graph(images=URLS[0]), {"title": "a cat"}, sim=sim)
    assert outcome.status == "succeeded", outcome.error
    outcome, _ = await run_graph(describe_graph(), {"title": "nothing"}, sim=sim)
    assert outcome.status == "succeeded", outcome.error
    one, plain = (c["json"]["messages"][0]["content"] for c in sim.control.stats()["received"])
    assert one == [
        {"type": "text", "text": "Describe a cat"},
        {"type": "image_url", "image_url": {"url": URLS[0]}},
    ]
    assert plain == "Describe nothing"  # text alone, as before


async def test_what_is_not_an_image_url_fails_before_the_provider(sim: RunningSimulator) -> None:
    for urls, expected in [
        (["https://ok.example/a.png", "file:///etc/passwd"], "images[1]: expected an http(s)"),
        ([{"url": "https://x.example"}], "images[0]: expected an http(s) or data:image/ URL"),
        (["https://a.example/x.png"] * (MAX_IMAGES + 1), f"at most {MAX_IMAGES} per call"),
    ]:
        outcome, _ = await run_graph(
            describe_graph(images="<webhook.body.urls>"), {"title": "x", "urls": urls}, sim=sim
        )
        assert outcome.status == "failed"
        assert expected in (outcome.error or ""), outcome.error
    assert sim.control.stats()["requests"]["openai"] == 0


def test_validation_bounds_a_literal_list_of_images() -> None:
    ok = validate(parse_graph(describe_graph(images=URLS)), REGISTRY, [])
    assert ok.errors == []
    too_many = validate(
        parse_graph(describe_graph(images=["https://a.example/x.png"] * (MAX_IMAGES + 1))),
        REGISTRY,
        [],
    )
    assert [issue.field for issue in too_many.errors] == ["images"]
